"""Shape ops: reshape, transpose, concatenate and basic slicing (``x[1:, ::2, -1]``).

They move values without arithmetic, so each backward moves the gradient back: reshape
undoes the reshape, transpose applies the inverse permutation, concatenate splits, and a
slice scatters into zeros. The batch dimension (None) is followed through every shape rule.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..core.errors import GraphError
from ..core.tensor import Tensor, apply, fmt_shape
from .base import Op, norm_axes

__all__ = ["reshape", "transpose", "concatenate", "getitem"]


def _prod(dims) -> int:
    n = 1
    for d in dims:
        n *= d
    return n


def _is_int(k) -> bool:
    return isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_))


class Reshape(Op):
    """y = x with a new shape of the same size;  dx = g reshaped to x's shape.

    -1 stands for the size that makes the total match. When x has a batch dimension (None),
    the target marks where it goes with None (and may hold one -1 besides), or with its one
    -1, which then takes the unknown factor as NumPy's would: ``(None, 8, 8) -> (-1, 64)``,
    ``(None, 4) -> (-1, 2, 2)`` give (None, 64) and (None, 2, 2); ``(None, 4) -> (-1, 2)``
    gives (None, 2) (2 x batch rows) and ``(None, 4) -> (2, -1)`` gives (2, None).
    With ``fold_batch`` the batch may absorb whole factors or give them back (TimeDistributed
    folds time into the batch: ``(None, T, C) -> (-1, C) -> (-1, T, C)``).
    """
    name = "reshape"
    family = "shape"

    def infer(self, x):
        target = (self.shape,) if _is_int(self.shape) or self.shape is None else tuple(self.shape)
        bad = [d for d in target if not (d is None or (_is_int(d) and d >= -1))]
        if bad:
            raise GraphError(f"shape {target} has invalid entries {bad}; use sizes, -1 or None")
        src = fmt_shape(x.shape)
        size = _prod(d for d in x.shape if d is not None)
        n_batch, n_none, n_free = x.shape.count(None), target.count(None), target.count(-1)
        if n_batch > 1:
            raise GraphError(f"cannot reshape {src}: more than one unknown dimension")
        if n_batch == 0 and n_none:
            raise GraphError(f"cannot reshape {src} to {fmt_shape(target)}: the input has no "
                             "batch dimension (None); use -1 for an inferred size")
        batch_pos = None
        if n_batch:
            if n_none > 1 or (n_none == 0 and n_free != 1):
                raise GraphError(f"cannot reshape {src} to {fmt_shape(target)}: mark where the "
                                 "batch dimension goes with one None or a single -1")
            if n_none == 0 and getattr(self, "fold_batch", False):
                batch_pos = target.index(-1)  # folding: the -1 is the batch (below)
            elif n_none == 0:  # the one -1 takes the unknown factor: (None, 4) -> (2, -1)
                batch_pos = target.index(-1)
                known = _prod(d for i, d in enumerate(target) if i != batch_pos)
                if known == 0 or size % known:
                    raise GraphError(
                        f"cannot reshape {src} (size {size}) to {fmt_shape(target)}: "
                        f"{known} does not divide {size} x the batch size for every batch size")
                out = list(target)
                out[batch_pos] = None
                self.run_shape = tuple(target)  # the -1 stays: the kernel infers it per call
                return tuple(out), x.dtype
            else:
                batch_pos = target.index(None)
        rest = [i for i in range(len(target)) if i != batch_pos]
        free = [i for i in rest if target[i] == -1]
        if len(free) > 1:
            raise GraphError(f"cannot reshape {src} to {fmt_shape(target)}: only one -1 "
                             "can be inferred")
        known = _prod(target[i] for i in rest if target[i] != -1)
        run = list(target)
        if getattr(self, "fold_batch", False) and n_batch:
            if batch_pos is None or free or not (known and (size % known == 0
                                                             or known % size == 0)):
                raise GraphError(f"cannot fold {src} into {fmt_shape(target)}: the batch "
                                 "(None or -1) must take or give whole factors")
            out = list(run)
            out[batch_pos], run[batch_pos] = None, -1
            self.run_shape = tuple(run)
            return tuple(out), x.dtype
        if free:
            if known == 0 or size % known:
                raise GraphError(f"cannot reshape {src} (size {size}) to {fmt_shape(target)}")
            run[free[0]] = size // known
        elif known != size:
            raise GraphError(f"cannot reshape {src} (size {size}) to {fmt_shape(target)} "
                             f"(size {known})")
        out = list(run)
        if batch_pos is not None:
            out[batch_pos], run[batch_pos] = None, -1
        self.run_shape = tuple(run)  # the shape handed to the kernel: -1 for the batch
        return tuple(out), x.dtype

    def forward(self, ctx, x):
        return ctx.be.reshape(x, self.run_shape)

    def backward(self, ctx, g, y, x):
        return (ctx.be.reshape(g, x.shape),)


class Transpose(Op):
    """y = x with axes permuted (reversed by default);  dx = g with the inverse permutation."""
    name = "transpose"
    family = "shape"

    def infer(self, x):
        n = x.ndim
        if self.axes is None:
            perm = tuple(reversed(range(n)))
        else:
            axes = tuple(self.axes)
            perm = tuple(norm_axes(a, n)[0] for a in axes) if all(map(_is_int, axes)) else ()
            if len(axes) != n or sorted(perm) != list(range(n)):
                raise GraphError(f"axes {axes} are not a permutation of the {n} axes of "
                                 f"{fmt_shape(x.shape)}")
        self.perm = perm
        self.inverse = tuple(int(i) for i in np.argsort(perm))
        return tuple(x.shape[i] for i in perm), x.dtype

    def forward(self, ctx, x):
        return ctx.be.transpose(x, self.perm)

    def backward(self, ctx, g, y, x):
        return (ctx.be.transpose(g, self.inverse),)


class Concatenate(Op):
    """y = [x_1, x_2, ...] joined along ``axis``;  dx_i = the slice of g where x_i went."""
    name = "concatenate"
    family = "shape"

    def infer(self, *xs):
        if not xs:
            raise GraphError("needs at least one tensor")
        n = xs[0].ndim
        if n == 0 or any(x.ndim != n for x in xs):
            raise GraphError(f"needs tensors of one rank >= 1, got shapes "
                             f"{[fmt_shape(x.shape) for x in xs]}")
        if len({x.dtype for x in xs}) != 1:
            raise GraphError(f"dtypes differ: {sorted(str(x.dtype) for x in xs)}")
        ax = self.ax = norm_axes(self.axis, n)[0]
        shape = list(xs[0].shape)
        for x in xs[1:]:
            for i in range(n):
                if i != ax and x.shape[i] != shape[i]:
                    raise GraphError(f"shapes {[fmt_shape(x.shape) for x in xs]} differ on "
                                     f"axis {i}; only the concatenation axis {ax} may differ")
        sizes = [x.shape[ax] for x in xs]
        shape[ax] = None if None in sizes else sum(sizes)
        return tuple(shape), xs[0].dtype

    def forward(self, ctx, *xs):
        return ctx.be.concatenate(xs, self.ax)

    def backward(self, ctx, g, y, *xs):
        return tuple(ctx.be.split(g, tuple(x.shape[self.ax] for x in xs), self.ax))


class Slice(Op):
    """y = x[index] for ints, slices (with steps) and Ellipsis;  dx = zeros with g at index."""
    name = "slice"
    family = "shape"

    def infer(self, x):
        index = self.index if isinstance(self.index, tuple) else (self.index,)
        for k in index:
            if k is None:
                raise GraphError("indexing with None (newaxis) is not supported; use reshape")
            if not (_is_int(k) or isinstance(k, slice) or k is Ellipsis):
                raise GraphError(f"index {k!r} is not supported: only ints, slices and ... "
                                 "(basic indexing)")
            if isinstance(k, slice) and not all(
                    v is None or _is_int(v) for v in (k.start, k.stop, k.step)):
                raise GraphError(f"slice {k} needs int or None bounds")
            if isinstance(k, slice) and k.step == 0:
                raise GraphError("slice step cannot be zero")
        if index.count(Ellipsis) > 1:
            raise GraphError("an index can only have a single ellipsis (...)")
        n_real = len(index) - index.count(Ellipsis)
        if n_real > x.ndim:
            raise GraphError(f"too many indices ({n_real}) for {fmt_shape(x.shape)}")
        fill = (slice(None),) * (x.ndim - n_real)
        if Ellipsis in index:
            e = index.index(Ellipsis)
            index = index[:e] + fill + index[e + 1:]
        else:
            index = index + fill
        key, shape = [], []
        for axis, (k, d) in enumerate(zip(index, x.shape)):
            if _is_int(k):
                if d is not None and not -d <= k < d:
                    raise GraphError(f"index {k} is out of range for axis {axis} of size {d}")
                key.append(int(k) % d if d is not None else int(k))
            else:
                key.append(k)
                # a slice of the batch dimension has a run-time length
                shape.append(None if d is None else len(range(*k.indices(d))))
        self.key = tuple(key)
        return tuple(shape), x.dtype

    def forward(self, ctx, x):
        return ctx.be.getitem(x, self.key)

    def backward(self, ctx, g, y, x):
        return (ctx.be.getitem_grad(g, x.shape, self.key),)


def reshape(x, shape, fold_batch: bool = False) -> Tensor:
    """x with a new shape of the same size; -1 infers one size, None or -1 keeps the batch
    (``fold_batch=True``: the batch takes or gives whole factors, its size then run-time)."""
    return apply(Reshape(shape=shape, fold_batch=True) if fold_batch else Reshape(shape=shape),
                 [x])


def transpose(x, axes: Sequence[int] | None = None) -> Tensor:
    """x with its axes permuted; the default reverses them (``x.T``)."""
    return apply(Transpose(axes=None if axes is None else tuple(axes)), [x])


def concatenate(xs: Sequence, axis: int = 0) -> Tensor:
    """The tensors joined along ``axis``; the others must agree (None with None)."""
    return apply(Concatenate(axis=int(axis)), list(xs))


def getitem(x, index) -> Tensor:
    """``x[index]`` (op "slice"): ints, slices with steps and Ellipsis."""
    return apply(Slice(index=index), [x])
