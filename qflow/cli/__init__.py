"""Front ends for people: the ``qflow`` command and ``qflow.launch`` for workflow files."""
