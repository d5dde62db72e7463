"""The errors users see: build-time graph errors and run-time feed errors, never a Numba trace."""

from __future__ import annotations


class GraphError(ValueError):
    """A graph that cannot be built or run: shape or dtype mismatch, cycle, foreign tensor.

    The message names the op, the node and the shapes involved.
    """


class FeedError(ValueError):
    """A run-time feed that is missing or has the wrong shape or dtype; names the input."""


class NumericsError(GraphError, FloatingPointError):
    """Raised by ``check_numerics=True``: names the first node that produced NaN or Inf."""
