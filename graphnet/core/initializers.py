"""Parameter initializers, by Keras' names; seeded so that runs repeat."""

from __future__ import annotations

import numpy as np

_counter = [0]


def _rng(seed: int | None) -> np.random.Generator:
    # Unseeded parameters still repeat across runs: each takes the next number of a global count.
    if seed is None:
        seed = 1234 + _counter[0]
        _counter[0] += 1
    return np.random.default_rng(seed)


def _fans(shape: tuple) -> tuple[int, int]:
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def initialize(name: str, shape: tuple, seed: int | None = None, dtype="float32") -> np.ndarray:
    """An array of ``shape`` drawn by the initializer ``name``.

    glorot_uniform: U(-l, l), l = sqrt(6 / (fan_in + fan_out)); he_normal: N(0, 2 / fan_in);
    orthogonal: Q of a QR decomposition; identity: the (rectangular) identity matrix.
    """
    key = name.lower()
    if key == "zeros":
        return np.zeros(shape, dtype)
    if key == "ones":
        return np.ones(shape, dtype)
    rng = _rng(seed)
    fan_in, fan_out = _fans(shape)
    if key == "normal":
        out = rng.normal(0.0, 0.05, shape)
    elif key == "uniform":
        out = rng.uniform(-0.05, 0.05, shape)
    elif key in ("glorot_uniform", "xavier_uniform"):
        lim = np.sqrt(6.0 / (fan_in + fan_out))
        out = rng.uniform(-lim, lim, shape)
    elif key in ("glorot_normal", "xavier_normal"):
        out = rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), shape)
    elif key == "he_normal":
        out = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
    elif key == "he_uniform":
        lim = np.sqrt(6.0 / fan_in)
        out = rng.uniform(-lim, lim, shape)
    elif key == "orthogonal":
        rows, cols = int(np.prod(shape[:-1])) if len(shape) > 1 else 1, shape[-1]
        a = rng.normal(0.0, 1.0, (max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))
        out = (q if rows >= cols else q.T)[:rows, :cols].reshape(shape)
    elif key == "identity":
        if len(shape) != 2:
            raise ValueError(f"identity initializer needs a 2-D shape, got {shape}")
        out = np.eye(*shape)
    else:
        raise ValueError(f"unknown initializer {name!r}; choose zeros, ones, normal, uniform, "
                         "glorot_uniform, glorot_normal, he_normal, he_uniform, orthogonal, "
                         "identity")
    return out.astype(dtype)


def serialize(init) -> str:
    """An initializer as saved in a model file: its name (a custom callable cannot be saved)."""
    if isinstance(init, str):
        return init
    from .errors import GraphError

    raise GraphError(f"cannot save the custom initializer {init!r}; use an initializer name")
