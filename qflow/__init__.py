"""QFlow: a Jupyter-first, ML-specific workflow platform.

Mark steps and workflows with decorators, run them, and every step's result is cached on
disk by a key of its code, settings and inputs:

```python
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
```

``import qflow`` is nearly free: each public name is imported on first use, so the ``qflow``
command starts fast and no heavy library (numpy, pandas, MLflow, IPython...) is loaded.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qflow import api, providers
    from qflow.artifacts.base import Factory
    from qflow.artifacts.registry import default_registry as registry
    from qflow.artifacts.registry import factory
    from qflow.artifacts.saved import load, save
    from qflow.dsl.decorators import label_info, mixin, name, provider, step, workflow
    from qflow.errors import QFlowError
    from qflow.launchers.local import run
    from qflow.runtime.info import Metric, Progress, ProgressBar, RuntimeInfo, report
    from qflow.workflows import launch

from qflow.version import __version__

_EXPORTS = {
    "Factory": "qflow.artifacts.base:Factory",
    "Metric": "qflow.runtime.info:Metric",
    "Progress": "qflow.runtime.info:Progress",
    "ProgressBar": "qflow.runtime.info:ProgressBar",
    "QFlowError": "qflow.errors:QFlowError",
    "RuntimeInfo": "qflow.runtime.info:RuntimeInfo",
    "api": "qflow.api",
    "factory": "qflow.artifacts.registry:factory",
    "label_info": "qflow.dsl.decorators:label_info",
    "launch": "qflow.workflows:launch",
    "load": "qflow.artifacts.saved:load",
    "mixin": "qflow.dsl.decorators:mixin",
    "name": "qflow.dsl.decorators:name",
    "provider": "qflow.dsl.decorators:provider",
    "providers": "qflow.providers",
    "registry": "qflow.artifacts.registry:default_registry",
    "report": "qflow.runtime.info:report",
    "run": "qflow.launchers.local:run",
    "save": "qflow.artifacts.saved:save",
    "step": "qflow.dsl.decorators:step",
    "workflow": "qflow.dsl.decorators:workflow",
}

__all__ = [
    "Factory",
    "Metric",
    "Progress",
    "ProgressBar",
    "QFlowError",
    "RuntimeInfo",
    "__version__",
    "api",
    "factory",
    "label_info",
    "launch",
    "load",
    "mixin",
    "name",
    "provider",
    "providers",
    "registry",
    "report",
    "run",
    "save",
    "step",
    "workflow",
]


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'qflow' has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    value = importlib.import_module(module_name)
    if attr:
        value = getattr(value, attr)
    globals()[name] = value
    return value


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext qflow``: register the ``%%qflow_step`` and ``%qflow`` magics."""
    from jupyter_ext import load_ipython_extension as load

    load(ip)


def unload_ipython_extension(ip: Any) -> None:
    """``%unload_ext qflow``."""
    from jupyter_ext import unload_ipython_extension as unload

    unload(ip)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
