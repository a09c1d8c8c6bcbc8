"""Artifact factories (save and load one kind of value) and the factory registry."""

from qflow.artifacts.base import Factory
from qflow.artifacts.registry import FactoryRegistry, default_registry, factory

__all__ = ["Factory", "FactoryRegistry", "default_registry", "factory"]
