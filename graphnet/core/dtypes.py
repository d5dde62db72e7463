"""The dtypes graphnet knows, and the casting rule for feeds."""

from __future__ import annotations

import numpy as np

FLOATS = (np.dtype("float32"), np.dtype("float64"))
INTS = (np.dtype("int32"), np.dtype("int64"))
DEFAULT_FLOAT = np.dtype("float32")


def as_dtype(dtype) -> np.dtype:
    """Normalise a dtype name or object; refuse kinds no kernel handles."""
    d = np.dtype(dtype)
    if d not in FLOATS + INTS + (np.dtype(bool),):
        raise TypeError(f"graphnet supports float32, float64, int32, int64 and bool, not {d}")
    return d


def is_float(dtype) -> bool:
    return np.dtype(dtype).kind == "f"


def can_feed(src: np.dtype, dst: np.dtype) -> bool:
    """The feed casting rule: a feed is cast to its Input's dtype when no kind is lost.

    float64 -> float32 (same kind, precision only), any int or bool -> float, and int or bool
    -> a wider-or-equal int are allowed; float -> int is refused, since it would silently
    truncate labels.
    """
    if dst.kind == "f":
        return src.kind in "fiub"
    if dst.kind in "iu":
        return src.kind in "iub"
    if dst.kind == "b":
        return src.kind == "b"
    return False
