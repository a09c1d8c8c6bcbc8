"""The content-addressed artifact store: one folder per cache key, committed atomically."""

from qflow.store.local import Store

__all__ = ["Store"]
