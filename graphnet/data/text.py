"""Character-level text for sequence models (Lecture 2): a vocabulary mapping characters to
ids, next-character training pairs, and sampling one id from a model's logits.

    vocab = gn.text.Vocabulary.fit(songs)
    ids = vocab.encode("\\n\\n".join(songs))
    x, y = gn.text.sequences(ids, length=100, stride=50)   # y is x shifted by one character
    next_id = gn.text.sample(logits, temperature=0.8, rng=rng)
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["Vocabulary", "sequences", "sample"]


def _codes(text: str) -> np.ndarray:
    """The Unicode code points of ``text`` as an int64 array."""
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)


class Vocabulary:
    """An ordered set of single characters; a character's id is its position.

    ``Vocabulary.fit(texts)`` takes the sorted distinct characters of the texts, as the MIT
    lab's ``sorted(set(text))`` does; ``Vocabulary(chars)`` keeps the order given.
    """

    def __init__(self, chars: Iterable[str]) -> None:
        chars = list(chars)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"a Vocabulary holds single characters, got {c!r}")
        if len(set(chars)) != len(chars):
            dup = sorted({c for c in chars if chars.count(c) > 1})
            raise ValueError(f"a Vocabulary's characters must be distinct; repeated: {dup}")
        self._chars = tuple(chars)
        self._index = {c: i for i, c in enumerate(chars)}
        self._array = np.array(chars if chars else [""], dtype="<U1")
        # code point -> id, -1 where the character is not in the vocabulary
        codes = _codes("".join(chars))
        self._table = np.full(int(codes.max()) + 1 if len(codes) else 1, -1, np.int64)
        self._table[codes] = np.arange(len(chars))

    @classmethod
    def fit(cls, texts: str | Iterable[str]) -> Vocabulary:
        """The vocabulary of every character in ``texts`` (one string or several), sorted."""
        if isinstance(texts, str):
            texts = [texts]
        seen: set[str] = set()
        for t in texts:
            seen.update(t)
        return cls(sorted(seen))

    @property
    def chars(self) -> tuple[str, ...]:
        """The characters, in id order."""
        return self._chars

    @property
    def size(self) -> int:
        """The number of characters (the size of a model's embedding and softmax)."""
        return len(self._chars)

    def __len__(self) -> int:
        return len(self._chars)

    def __contains__(self, char: object) -> bool:
        return char in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._chars == other._chars

    def __hash__(self) -> int:
        return hash(self._chars)

    def __repr__(self) -> str:
        return f"Vocabulary({''.join(self._chars)!r})"

    def encode(self, text: str) -> np.ndarray:
        """The ids of the characters of ``text`` as an int64 array of ``len(text)``."""
        codes = _codes(text)
        ids = np.full(len(codes), -1, np.int64)
        known = codes < len(self._table)
        ids[known] = self._table[codes[known]]
        bad = np.flatnonzero(ids < 0)
        if len(bad):
            missing = sorted({text[i] for i in bad})
            raise ValueError(f"the text has {len(bad)} characters not in the vocabulary of "
                             f"{self.size} (first at position {bad[0]}): {missing[:10]}")
        return ids

    def decode(self, ids: Iterable[int] | np.ndarray) -> str:
        """The string whose characters have the ids ``ids`` (a 1-D sequence of ints)."""
        ids = np.asarray(ids)
        if ids.ndim != 1:
            raise ValueError(f"decode takes a 1-D sequence of ids, got shape {ids.shape}")
        if len(ids) == 0:
            return ""
        if ids.dtype.kind not in "iu":
            raise ValueError(f"decode takes integer ids, got dtype {ids.dtype}")
        if ids.min() < 0 or ids.max() >= self.size:
            raise ValueError(f"ids must be in [0, {self.size}), got values from {ids.min()} "
                             f"to {ids.max()}")
        return "".join(self._array[ids].tolist())

    def get_config(self) -> dict:
        """A JSON-able description: ``{"chars": [...]}``, for saving beside a model."""
        return {"chars": list(self._chars)}

    @classmethod
    def from_config(cls, config: dict) -> Vocabulary:
        """The vocabulary that ``get_config`` described."""
        return cls(config["chars"])


def sequences(ids: np.ndarray, length: int, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Next-character training pairs: windows ``inputs[i] = ids[i*stride : i*stride+length]``
    and ``targets[i]`` the same window one character later, both (N, length) int64 copies.

    Deterministic (the lab's ``get_batch`` draws random windows instead: shuffle the
    batches). Memory is about 16 * N * length bytes; a larger ``stride`` gives fewer windows.
    """
    ids = np.asarray(ids)
    if ids.ndim != 1 or (len(ids) and ids.dtype.kind not in "iu"):
        raise ValueError(f"sequences takes a 1-D array of integer ids, got shape {ids.shape} "
                         f"and dtype {ids.dtype}")
    length, stride = int(length), int(stride)
    if length < 1 or stride < 1:
        raise ValueError(f"length and stride must be positive, got {length} and {stride}")
    if len(ids) < length + 1:
        raise ValueError(f"a window of length {length} and its target need {length + 1} ids, "
                         f"got {len(ids)}")
    ids = ids.astype(np.int64, copy=False)
    windows = np.lib.stride_tricks.sliding_window_view(ids, length + 1)[::stride]
    return windows[:, :-1].copy(), windows[:, 1:].copy()


def sample(logits: np.ndarray, temperature: float = 1.0,
           rng: np.random.Generator | int | None = None) -> int | np.ndarray:
    """Draw an id from softmax(logits / temperature); temperature 0 takes the argmax.

    ``logits`` is (vocab,) -> an int, or (batch, vocab) -> an int64 array, one draw per row.
    Low temperatures make the text safer and more repetitive, high ones more surprising.
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim not in (1, 2) or z.shape[-1] == 0:
        raise ValueError(f"sample takes logits of shape (vocab,) or (batch, vocab), got "
                         f"{z.shape}")
    if not np.all(np.isfinite(z)):
        raise ValueError("sample got logits that are not finite (NaN or inf)")
    temperature = float(temperature)
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    rows = z.reshape(-1, z.shape[-1])
    if temperature == 0:
        out = rows.argmax(axis=1)
    else:
        rng = np.random.default_rng(rng)
        # softmax with the max subtracted, so exp never overflows
        p = np.exp((rows - rows.max(axis=1, keepdims=True)) / temperature)
        cdf = np.cumsum(p, axis=1)
        u = rng.random(len(rows)) * cdf[:, -1]
        # inverse CDF: the first id whose cumulative weight exceeds u
        out = np.minimum((cdf <= u[:, None]).sum(axis=1), z.shape[-1] - 1)
    out = out.astype(np.int64)
    return int(out[0]) if z.ndim == 1 else out
