"""What happens while a workflow computes: the run driver, node tasks, runtime info, events."""
