"""QFlow's Jupyter layer: ``%%qflow_step`` cell magics, live widgets and the run inspector.

Depends on ``qflow``; ``qflow`` never imports it (``%load_ext qflow`` calls
``qflow.load_ipython_extension``, which imports this package inside the function).
"""

from __future__ import annotations

from typing import Any


def load_ipython_extension(ip: Any) -> None:
    """Register the magics and the display of runs in IPython shell ``ip``."""
    from jupyter_ext.magics import load

    load(ip)


def unload_ipython_extension(ip: Any) -> None:
    """Remove what :func:`load_ipython_extension` registered."""
    from jupyter_ext.magics import unload

    unload(ip)
