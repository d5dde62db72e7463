"""Inverted dropout: in training, zero each element with probability ``rate`` and scale the
rest by ``1 / (1 - rate)``; at inference, the identity.

The mask is a hash of ``(seed, element index)`` computed inside the kernel, so nothing is
stored and backward recomputes the very mask forward used. Which seed:

* ``seed=None`` (the default): each forward call in training takes ``ctx.next_seed()``,
  a fresh mask per step, derived from the program's seed and the node, so a run repeats;
* ``seed=k``: every call uses ``k``, the same mask each call. Gradient checks need this:
  the finite-difference pass calls forward many times and must see one fixed function
  (``check_gradients(lambda x: gn.dropout(x, 0.5, seed=1), a, training=True)``).
"""

from __future__ import annotations

from ..core.errors import GraphError
from ..core.tensor import Tensor, apply
from .base import Op, same_float_dtype

__all__ = ["dropout"]


class Dropout(Op):
    """Training: y = x m / (1 - rate), m_i = [hash(seed, i) >= rate]; dx = g m / (1 - rate).
    Inference: y = x, dx = g."""

    name = "dropout"
    family = "regularization"

    def infer(self, x):
        if not 0.0 <= self.rate < 1.0:
            raise GraphError(f"dropout rate must be in [0, 1), got {self.rate}")
        return x.shape, same_float_dtype(x)

    def _active(self, ctx) -> bool:
        return ctx.training and self.rate > 0.0

    def forward(self, ctx, x):
        if not self._active(ctx):
            return x
        ctx.mask_seed = self.seed if self.seed is not None else ctx.next_seed()
        return ctx.be.dropout(x, self.rate, ctx.mask_seed)

    def backward(self, ctx, g, y, x):
        if not self._active(ctx):
            return (g,)
        return (ctx.be.dropout_grad(g, self.rate, ctx.mask_seed),)


def dropout(x, rate: float, seed: int | None = None) -> Tensor:
    """Inverted dropout, active only in programs compiled with ``training=True``; ``seed``
    fixes the mask (see the module docstring)."""
    return apply(Dropout(rate=float(rate), seed=None if seed is None else int(seed)), [x])
