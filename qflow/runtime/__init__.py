"""What happens while a workflow computes: runtime info events and the executor."""
