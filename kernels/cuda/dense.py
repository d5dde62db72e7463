"""Dense kernels on the GPU: ``act(x @ W + b)`` as the tiled GEMM plus one fused epilogue.

Forward: one GEMM, then one pass that adds the bias and applies the activation (keeping the
pre-activation when asked). Backward: one pass forming ``dZ = g * act'(z)``, the bias
gradient as a column sum of dZ, and two GEMMs read through transposed strides:
``dx = dZ W^T``, ``dW = x^T dZ``. The activation math is ``activation.py``'s.
"""

from __future__ import annotations

from numba import cuda

from . import _base
from .activation import _act_grad_map, act, code_of
from .matmul import matmul

__all__ = ["dense", "dense_grad"]


@cuda.jit
def _bias_act(z, b, y, n_out, has_bias, code, alpha):
    # z <- z + b (kept when y is another array), y <- act(z)
    for i in range(cuda.grid(1), z.size, cuda.gridsize(1)):
        v = z[i] + b[i % n_out] if has_bias else z[i]
        z[i] = v
        y[i] = act(code, v, alpha)


def _rows(x, n: int):
    from . import asarray

    return _base.rows(asarray(x), n)


def dense(x, W, b, kind: str | None, alpha: float = 0.0, keep_z: bool = False, out=None):
    """``(y, z)``: ``y = act(x @ W + b)`` and the pre-activation ``z`` (``y`` unless keep_z).
    ``out`` is the CPU's buffer hint; this backend allocates (``reuses_buffers = False``)."""
    from . import asarray

    n_in, n_out = W.shape
    z = matmul(_rows(x, n_in), asarray(W))
    code = code_of(kind)
    y = z
    if (b is not None or code != 0) and z.size:
        y = _base.empty(z.shape, z.dtype) if keep_z else z
        bb = asarray(b) if b is not None else z  # z stands in for an absent bias (unread)
        _bias_act[_base.blocks(z.size), _base.TPB](_base.flat(z), _base.flat(bb), _base.flat(y),
                                                   n_out, b is not None, code,
                                                   z.dtype.type(alpha))
    shape = tuple(x.shape)[:-1] + (n_out,)
    return y.reshape(shape), z.reshape(shape)


def dense_grad(g, x, W, zy, y, kind: str | None, alpha: float = 0.0, bias: bool = True,
               need_dx: bool = True, out=None):
    """``(dx, dW, db)`` of the dense op; ``zy`` is the kept pre-activation, or ``y``;
    ``dx`` is None when ``need_dx`` is false (x is data: its GEMM is skipped)."""
    from . import asarray
    from .reduce import sum as rsum

    n_in, n_out = W.shape
    g2 = _rows(g, n_out)
    dz = _act_grad_map(g2, _rows(zy, n_out), _rows(y, n_out), p=alpha, code=code_of(kind))
    x2 = _rows(x, n_in)
    dx = matmul(dz, asarray(W), trans_b=True).reshape(tuple(x.shape)) if need_dx else None
    dW = matmul(x2, dz, trans_a=True)
    db = rsum(dz, (0,)) if bias else None
    return dx, dW, db
