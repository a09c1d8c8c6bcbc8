"""Project life cycle: scaffolding from templates, workflow creation, component configuration."""
