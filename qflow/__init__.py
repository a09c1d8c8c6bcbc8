"""QFlow: a Jupyter-first, ML-specific workflow platform.

Mark steps and workflows with decorators, run them, and every step's result is cached on
disk by a key of its code, settings and inputs::

    import qflow

    @qflow.step
    class Double:
        def apply(self, x: int) -> int:
            return 2 * x

    @qflow.workflow
    class Example:
        def run(self, x: int = 21) -> int:
            return Double().apply(x)

    qflow.run(Example())

Importing ``qflow`` loads no heavy library (no numpy, pandas, mlflow, IPython...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qflow import providers
from qflow.artifacts.base import Factory
from qflow.artifacts.registry import default_registry as registry
from qflow.artifacts.registry import factory
from qflow.artifacts.saved import load, save
from qflow.cli.launch import launch
from qflow.dsl.decorators import label_info, mixin, provider, step, workflow
from qflow.errors import QFlowError
from qflow.runtime.info import Metric, Progress, ProgressBar, RuntimeInfo

if TYPE_CHECKING:
    from qflow.runtime.events import RunState

__version__ = "0.1.0"

__all__ = [
    "Factory",
    "Metric",
    "Progress",
    "ProgressBar",
    "QFlowError",
    "RuntimeInfo",
    "__version__",
    "factory",
    "label_info",
    "launch",
    "load",
    "mixin",
    "provider",
    "providers",
    "registry",
    "run",
    "save",
    "step",
    "workflow",
]


def run(workflow: Any, *, inputs: dict[str, Any] | None = None, cache: bool = True,
        console: bool = True, tracker: str | None = "file", root: Any = None) -> RunState:
    """Compute ``workflow`` (an instance) in this process and return the finished run.

    Args:
        inputs: values or providers for ``run()``'s inputs, overriding its defaults.
        cache: ``False`` recomputes every step and stores nothing.
        console: print a line per step and progress bars.
        tracker: the tracker to record the run in (``None`` for none).
        root: the project (or folder) whose ``.qflow/`` to use; found from the working folder
            by default.
    """
    from qflow.config.paths import Paths
    from qflow.launchers.local import LocalLauncher

    paths = Paths.discover(root)
    launcher = LocalLauncher(paths, tracker=tracker, console=console, cache=cache)
    return launcher.launch(workflow, inputs)
