"""Where a project lives and how it is configured."""
