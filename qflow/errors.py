"""Errors raised by QFlow.

Every error a user can cause derives from ``QFlowError``; each class carries a one-line
``headline`` that front ends (the CLI, ``qflow.launch``, the magics) print before the message.

    QFlowError
    ├── SettingsError      a step or workflow field got a value of the wrong type
    ├── GraphBuildError    ``run()`` cannot be traced into a graph
    ├── FactoryError       no factory can save or load an artifact
    ├── StoreError         the artifact store cannot be read or written
    │   └── IntegrityError an artifact on disk does not match its checksum
    ├── ConfigError        a configuration file, key or value is wrong
    └── StepError          a user's step raised; carries the step name and run id

``report_error`` prints one of them for a person, and ``user_traceback`` shows a
user's exception without QFlow's own frames. This module imports nothing else from QFlow,
so every layer can raise and report these errors.
"""

from __future__ import annotations

import sys
import traceback
from typing import TextIO


class QFlowError(Exception):
    """Root of every error QFlow raises on purpose."""

    headline = "QFlow error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message}\nHint: {hint}")


class SettingsError(QFlowError, ValueError):
    """A step's or workflow's settings failed validation."""

    headline = "Invalid settings"


class GraphBuildError(QFlowError):
    """The workflow's ``run()`` could not be traced into a graph."""

    headline = "Cannot build the workflow graph"


class FactoryError(QFlowError):
    """No artifact factory can handle a value or a stored artifact."""

    headline = "Artifact factory error"


class StoreError(QFlowError):
    """The artifact store could not be read or written."""

    headline = "Artifact store error"


class IntegrityError(StoreError):
    """An artifact's files do not match the checksums recorded when it was written."""

    headline = "Corrupted artifact"


class ConfigError(QFlowError):
    """A configuration file, key or value is wrong."""

    headline = "Configuration error"


class StepError(QFlowError):
    """A step raised while it ran; the user's exception is the ``__cause__``."""

    headline = "Step failed"

    def __init__(self, message: str, *, step: str, run_id: str, hint: str | None = None) -> None:
        self.step = step
        self.run_id = run_id
        super().__init__(message, hint=hint)


def user_traceback(exc: BaseException) -> str:
    """The traceback of a user's exception, without QFlow's own frames."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if "/qflow/runtime/" not in f.filename.replace("\\", "/")]
    lines = traceback.format_list(frames)
    lines += traceback.format_exception_only(type(exc), exc)
    return "Traceback (most recent call last):\n" + "".join(lines)


def report_error(exc: QFlowError, stream: TextIO | None = None) -> None:
    """Print ``exc`` for a person: its headline, message, hint, and a failed step's traceback."""
    stream = stream or sys.stderr
    print(f"Error: {exc.headline}", file=stream)
    print(f"  {exc.message}", file=stream)
    if isinstance(exc, StepError) and exc.__cause__ is not None \
            and not isinstance(exc.__cause__, QFlowError):
        print("\n" + user_traceback(exc.__cause__), file=stream)
    if exc.hint:
        print(f"Hint: {exc.hint}", file=stream)
