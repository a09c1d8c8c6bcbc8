"""Tuners: search a workflow's parameters for the best result, reusing the step cache."""

from qflow.plugins import Registry

tuners: Registry[type] = Registry("qflow.tuners", {"optuna": "qflow.tuners.optuna:OptunaTuner"})

__all__ = ["tuners"]
