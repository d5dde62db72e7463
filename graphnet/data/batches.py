"""Mini-batches: ``for xb, yb in gn.batches(x, y, batch_size=32, seed=0): ...``."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["batches", "Batches"]


class Batches:
    """An iterator over one epoch of mini-batches: tuples with one slice per array.

    ``len()`` gives the number of batches in the epoch. Without shuffling the batches are
    views of the arrays; with shuffling they are gathered copies in the seeded order.
    """

    def __init__(self, arrays: tuple, batch_size: int, shuffle: bool,
                 seed: int | np.random.Generator | None, drop_last: bool) -> None:
        if not arrays:
            raise ValueError("batches needs at least one array")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        self.arrays = tuple(np.asarray(a) for a in arrays)
        n = len(self.arrays[0])
        lens = [len(a) for a in self.arrays]
        if any(m != n for m in lens):
            raise ValueError(f"all arrays must have the same number of samples, got {lens}")
        self.n, self.batch_size = n, int(batch_size)
        self.order = np.random.default_rng(seed).permutation(n) if shuffle else None
        full, rest = divmod(n, self.batch_size)
        self._count = full if drop_last or rest == 0 else full + 1
        self._i = 0

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[tuple]:
        return self

    def span(self, i: int) -> tuple[int, int]:
        """``(lo, hi)``: batch ``i`` is rows ``lo:hi`` of the arrays, or of ``order`` when
        shuffling."""
        lo = i * self.batch_size
        return lo, min(lo + self.batch_size, self.n)

    def __next__(self) -> tuple:
        if self._i >= self._count:
            raise StopIteration
        lo, hi = self.span(self._i)
        self._i += 1
        if self.order is None:
            return tuple(a[lo:hi] for a in self.arrays)
        idx = self.order[lo:hi]
        return tuple(a[idx] for a in self.arrays)


def batches(*arrays, batch_size: int = 32, shuffle: bool = True,
            seed: int | np.random.Generator | None = None, drop_last: bool = False) -> Batches:
    """One epoch of mini-batches of ``arrays`` (aligned on the first axis), each sample once.

    ``seed`` fixes the shuffled order (the same seed, the same epoch); pass a
    ``np.random.Generator`` to draw a new order each epoch from one seeded stream.
    ``drop_last`` drops a last batch smaller than ``batch_size``.
    """
    return Batches(arrays, batch_size, shuffle, seed, drop_last)
