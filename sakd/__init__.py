"""Spot-adaptive knowledge distillation: the library (no DVC, no paths, no params.yaml)."""

__version__ = "0.1.0"
