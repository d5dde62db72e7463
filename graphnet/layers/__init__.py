"""Keras-style layers: each builds a subgraph under its own name scope and owns Parameters."""

from .base import LAYERS, Layer, deserialize, serialize
from .core import Activation, Add, Concatenate, Dense, Dropout, Flatten, Reshape, get_activation

__all__ = ["Layer", "LAYERS", "serialize", "deserialize", "Dense", "Activation", "Dropout",
           "Flatten", "Reshape", "Concatenate", "Add", "get_activation"]
