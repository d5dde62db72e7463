"""The Graph: an append-only list of Tensor nodes with unique scoped names.

A graph is a context manager; tensors built inside ``with g:`` belong to ``g``. A default
graph exists so that quick scripts need no ``with``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import networkx as nx

if TYPE_CHECKING:
    from .tensor import Tensor


class Graph:
    """A static dataflow graph. Nodes are added by ops and layers, never removed."""

    _stack: list[Graph] = []
    _default: Graph | None = None

    def __init__(self, name: str = "graph") -> None:
        self.name = name
        self.nodes: list[Tensor] = []
        self._used: dict[str, int] = {}
        self._scopes: list[str] = []

    # -- context management -------------------------------------------------------------
    def __enter__(self) -> Graph:
        Graph._stack.append(self)
        return self

    def __exit__(self, *exc) -> None:
        Graph._stack.pop()

    @staticmethod
    def current() -> Graph:
        """The innermost graph of a ``with`` block, else the default graph."""
        if Graph._stack:
            return Graph._stack[-1]
        if Graph._default is None:
            Graph._default = Graph("default")
        return Graph._default

    # -- names --------------------------------------------------------------------------
    @property
    def scope(self) -> str:
        return "/".join(self._scopes)

    def unique_name(self, base: str, scoped: bool = True) -> str:
        """``base`` under the current scope, suffixed ``_1``, ``_2``... when already used."""
        full = f"{self.scope}/{base}" if scoped and self._scopes else base
        n = self._used.get(full, 0)
        self._used[full] = n + 1
        return full if n == 0 else f"{full}_{n}"

    @contextlib.contextmanager
    def name_scope(self, name: str, unique: bool = True) -> Iterator[str]:
        """Nodes made inside are named ``<scope>/<node>``; layers use this to form clusters."""
        scoped = self.unique_name(name) if unique else name
        leaf = scoped.rsplit("/", 1)[-1]
        self._scopes.append(leaf)
        try:
            yield scoped
        finally:
            self._scopes.pop()

    # -- views --------------------------------------------------------------------------
    def add(self, node: Tensor) -> None:
        self.nodes.append(node)

    def by_name(self, name: str) -> Tensor:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no tensor named {name!r} in graph {self.name!r}")

    def ancestors(self, outputs, stop=()) -> list[Tensor]:
        """The outputs and every node they read, in build order (deterministic); the walk
        does not go past the tensors in ``stop``."""
        stop_ids = {id(t) for t in stop}
        seen: dict[int, Tensor] = {}
        todo = list(outputs)
        while todo:
            t = todo.pop()
            if id(t) in seen:
                continue
            seen[id(t)] = t
            if id(t) not in stop_ids:
                todo.extend(t.inputs)
        rank = {id(t): i for i, t in enumerate(self.nodes)}
        return sorted(seen.values(), key=lambda t: rank.get(id(t), -1))

    def to_networkx(self) -> nx.DiGraph:
        """A networkx DiGraph keyed by node name, with op, shape, dtype and scope attributes.

        Each node also carries ``tensor``, the Tensor itself. An edge ``a -> b`` means b reads a.
        """
        G = nx.DiGraph(name=self.name)
        for t in self.nodes:
            G.add_node(t.name, tensor=t, op=t.op_name, kind=t.kind, shape=t.shape,
                       dtype=str(t.dtype), scope=t.scope)
        for t in self.nodes:
            for i, src in enumerate(t.inputs):
                G.add_edge(src.name, t.name, index=i)
        return G

    def __repr__(self) -> str:
        return f"<Graph {self.name!r}: {len(self.nodes)} nodes>"

    def _repr_mimebundle_(self, include=None, exclude=None):
        """Jupyter shows a graph as its drawing (graphnet.visualize)."""
        try:
            from graphnet.visualize import mimebundle
        except ImportError:
            return None
        return mimebundle(self, include, exclude)
