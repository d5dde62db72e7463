"""Data: bundled and generated datasets, mini-batches, text (characters) and music (ABC)."""

from . import datasets, music, text
from .batches import Batches, batches

__all__ = ["datasets", "text", "music", "batches", "Batches"]
