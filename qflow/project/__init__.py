"""Project life cycle: scaffolding from templates, workflow creation, component configuration,
and loading a project's workflows (class, config, inputs) before they run."""
