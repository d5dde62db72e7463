"""Gradient checking: compare a graph's backward pass with central finite differences.

``check_gradients(build, *arrays)`` builds ``build(*params)`` in a fresh graph with one float64
Parameter per array, weights the output by a fixed random tensor R (so every output element
counts) and sums it, and compares d sum(R * out) / d param from backward with
(f(p + eps) - f(p - eps)) / (2 eps) for each element.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .core.graph import Graph
from .core.program import compile
from .core.tensor import Parameter, Tensor, constant
from .ops.reduce import sum as reduce_sum


def numeric_gradient(f: Callable[[], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``f()`` with respect to ``x``, perturbed in place."""
    grad = np.zeros_like(x, dtype=np.float64)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        hi = f()
        flat[i] = old - eps
        lo = f()
        flat[i] = old
        gflat[i] = (hi - lo) / (2 * eps)
    return grad


def check_gradients(build: Callable[..., Tensor], *arrays: np.ndarray,
                    wrt: Sequence[int] | None = None, eps: float = 1e-6, atol: float = 1e-6,
                    rtol: float = 1e-5, seed: int = 0, training: bool = False,
                    device: str = "cpu") -> list[np.ndarray]:
    """Assert that backward matches finite differences for ``build(*params)``; float64 only.

    ``wrt`` picks which arrays are checked (default: all float arrays). Returns the analytic
    gradients. Integer arrays (labels) become constants.
    """
    rng = np.random.default_rng(seed)
    with Graph("gradcheck"):
        leaves = []
        for i, a in enumerate(arrays):
            a = np.asarray(a)
            if a.dtype.kind == "f":
                leaves.append(Parameter(a.astype(np.float64), dtype="float64", name=f"p{i}"))
            else:
                leaves.append(constant(a, dtype=a.dtype, name=f"c{i}"))
        out = build(*leaves)
        if any(d is None for d in out.shape):
            raise ValueError("check_gradients needs an output of static shape")
        R = rng.normal(size=out.shape) if out.shape else np.array(rng.normal())
        loss = reduce_sum(out * constant(R.astype(out.dtype), dtype=out.dtype, name="R"))
    idx = [i for i, a in enumerate(arrays) if np.asarray(a).dtype.kind == "f"] \
        if wrt is None else list(wrt)
    params = [leaves[i] for i in idx]
    prog = compile(loss, wrt=params, training=training, device=device, seed=seed)
    fwd = compile(loss, training=training, device=device, seed=seed)
    _, grads = prog({})
    # with training=True the same seed must give the same random masks in both programs
    for p, g in zip(params, grads):
        num = numeric_gradient(lambda: float(np.sum(fwd({}))), p.data, eps)
        np.testing.assert_allclose(g, num, rtol=rtol, atol=atol,
                                   err_msg=f"gradient of {p.name} in {out.name} ({out.op_name})")
    return grads
