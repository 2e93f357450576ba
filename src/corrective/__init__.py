"""Corrective machine unlearning for PyTorch image classifiers."""

__version__ = "0.1.0"
