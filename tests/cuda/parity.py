"""Helpers of the CUDA parity tests: run a kernel on both backends and compare on the host."""

from __future__ import annotations

import numpy as np

F32 = dict(rtol=2e-5, atol=1e-6)


def _dev(K, a):
    return K.asarray(a) if isinstance(a, np.ndarray) else a


def _host(K, y):
    if isinstance(y, (tuple, list)):
        return type(y)(_host(K, v) for v in y)
    if y is None or isinstance(y, (float, int)):
        return y
    return K.to_host(y)


def _same(got, want, exact=False, **tol):
    if isinstance(want, (tuple, list)):
        assert isinstance(got, (tuple, list)) and len(got) == len(want)
        for g, w in zip(got, want):
            _same(g, w, exact, **tol)
        return
    if want is None:
        assert got is None
        return
    if isinstance(want, float):
        np.testing.assert_allclose(got, want, **(tol or F32))
        return
    got = np.asarray(got)
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, want.shape,
                                                                  got.dtype, want.dtype)
    if exact:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, **(tol or F32))


def check(K, C, name, *args, exact=False, tol=None, **kw):
    """CUDA ``name(*args)`` equals CPU ``name(*args)``; returns the CPU result."""
    want = getattr(C, name)(*args, **kw)
    got = getattr(K, name)(*[_dev(K, a) for a in args], **kw)
    _same(_host(K, got), want, exact, **(tol or {}))
    return want


def f32(r, *shape, lo=-1.0, hi=1.0):
    return r.uniform(lo, hi, shape).astype(np.float32)


def count_reads(monkeypatch, K) -> list:
    """Count device-to-host copies from now on (each waits for the GPU): the list's length."""
    cls = type(K.asarray(np.zeros(1, np.float32)))
    reads: list = []
    copy = cls.copy_to_host

    def counted(self, *args, **kwargs):
        reads.append(self.shape)
        return copy(self, *args, **kwargs)

    monkeypatch.setattr(cls, "copy_to_host", counted)
    return reads
