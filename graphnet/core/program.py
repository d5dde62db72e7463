"""The executor: ``gn.compile`` turns outputs (and parameters to differentiate) into a Program.

Compile time does the graph work once, with networkx: prune to the outputs' ancestors, order
them topologically, and mark the nodes that lie between ``wrt`` and the loss. A call then runs
two flat Python loops: forward over the schedule, backward over the marked nodes in reverse,
summing gradients where a node fans out. The loops know no op: each step is
``op.forward(ctx, *inputs)`` or ``op.backward(ctx, g, y, *inputs)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx
import numpy as np

from . import ahead
from .backend import get_backend, is_device_array
from .dtypes import can_feed
from .errors import FeedError, GraphError, NumericsError
from .rows import IndexedRows, dense, stored, taken_by
from .tensor import Tensor, fmt_shape

_MISSING = object()


class Ctx:
    """Per-node state of one Program: the backend, the mode, and what forward saves for backward.

    ``buffer(slot, shape, dtype)`` hands out an output array that is reused across calls
    with the same shapes, so a training loop does not allocate every step. ``wants(i)``
    says whether backward must produce input i's gradient (the program sets ``needs``).
    """

    def __init__(self, be, training: bool, seed: int, needs: tuple | None = None) -> None:
        self.be = be
        self.training = training
        self.seed = seed
        self.needs = needs
        self.calls = 0
        self._bufs: dict[Any, Any] = {}

    def buffer(self, slot, shape: tuple, dtype):
        """A reusable output array for ``slot``, or None where the backend allocates its
        own outputs (CUDA): then kernels allocate."""
        if not self.be.reuses_buffers:
            return None
        b = self._bufs.get(slot)
        if b is None or b.shape != shape or b.dtype != dtype:
            b = self._bufs[slot] = self.be.empty(shape, dtype)
        return b

    def wants(self, i: int) -> bool:
        """Whether input ``i``'s gradient is wanted (all are, outside a compiled program)."""
        return self.needs is None or self.needs[i]

    def next_seed(self) -> int:
        """A fresh seed per call, derived from the program's seed (dropout masks)."""
        self.calls += 1
        return (self.seed * 1000003 + self.calls) & 0x7FFFFFFF


class Program:
    """A compiled graph. ``prog(feeds)`` returns outputs, or ``(outputs, grads)`` with ``wrt``."""

    def __init__(self, outputs: Tensor | Sequence[Tensor], wrt: Sequence[Tensor] = (),
                 device: str = "cpu", training: bool = False, check_numerics: bool = False,
                 seed: int = 0) -> None:
        self.single = isinstance(outputs, Tensor)
        self.outputs = [outputs] if self.single else list(outputs)
        if not self.outputs or not all(isinstance(t, Tensor) for t in self.outputs):
            raise GraphError("compile needs one Tensor or a list of Tensors as outputs")
        self.wrt = list(wrt)
        self.device = device
        self.training = training
        self.check_numerics = check_numerics
        self.be = get_backend(device)
        # the backend's thread policy, run at each call (the CPU's: one BLAS thread while the
        # machine is busy, kernels/threads.py); a no-op where the backend has none
        self._balance = getattr(self.be, "balance_threads", lambda: None)
        graph = self.outputs[0].graph
        for t in self.outputs + self.wrt:
            if t.graph is not graph:
                raise GraphError(f"tensor {t.name!r} belongs to graph {t.graph.name!r}, not "
                                 f"{graph.name!r}; a program runs one graph")
        self._schedule(graph, seed)

    # -- compile time -------------------------------------------------------------------
    def _schedule(self, graph, seed: int) -> None:
        G = graph.to_networkx()
        needed = set()
        for t in self.outputs:
            needed |= nx.ancestors(G, t.name) | {t.name}
        sub = G.subgraph(needed)
        if not nx.is_directed_acyclic_graph(sub):
            raise GraphError(f"the graph has a cycle: {nx.find_cycle(sub)}")
        # Any topological order is correct; among them keep the build order, which reads
        # naturally and repeats from run to run.
        rank = {id(t): i for i, t in enumerate(graph.nodes)}
        order = sorted((G.nodes[n]["tensor"] for n in nx.topological_sort(sub)),
                       key=lambda t: rank[id(t)])
        self.order = order
        index = {id(t): i for i, t in enumerate(order)}
        self._index = index
        self.inputs = [t for t in order if t.kind == "input"]
        self.params = [t for t in order if t.kind in ("parameter", "constant")]
        for w in self.wrt:
            if not isinstance(w, Tensor) or w.kind not in ("parameter", "input"):
                raise GraphError(f"wrt takes Parameters or Inputs, got {w!r}")
            if id(w) not in index:
                raise GraphError(f"the output does not depend on {w.name!r}; its gradient "
                                 "would always be zero")
        self.ctxs = [Ctx(self.be, self.training, seed * 7919 + i) for i in range(len(order))]
        self._fwd = [(t.op, self.ctxs[i], tuple(index[id(s)] for s in t.inputs), i)
                     for i, t in enumerate(order) if t.op is not None]
        self._bwd = []
        if self.wrt:
            loss = self.outputs[0]  # any further outputs are fetched beside it
            if loss.dtype.kind != "f":
                raise GraphError(f"cannot differentiate {loss.name!r} of dtype {loss.dtype}")
            if any(d != 1 for d in loss.shape):  # None (the batch) counts as unknown
                raise GraphError(
                    f"the differentiated output {loss.name!r} (op {loss.op_name}) has shape "
                    f"{fmt_shape(loss.shape)}, not a scalar: its gradient can be seeded only "
                    "for a scalar loss; reduce it first (gn.sum(y) or gn.mean(y)), or fetch "
                    "it beside a scalar loss as a further output")
            down = set()
            for w in self.wrt:
                down |= nx.descendants(sub, w.name) | {w.name}
            active = down & (nx.ancestors(sub, loss.name) | {loss.name})
            for i in reversed(range(len(order))):
                t = order[i]
                if t.op is None or t.name not in active:
                    continue
                need = tuple(s.name in active for s in t.inputs)
                self.ctxs[i].needs = need
                self._bwd.append((t.op, self.ctxs[i], tuple(index[id(s)] for s in t.inputs),
                                  i, need))
            self._wrt_idx = [index[id(w)] for w in self.wrt]
            self._loss_idx = index[id(loss)]
        self._out_idx = [index[id(t)] for t in self.outputs]
        # (input, slot, shape after the batch dimension or None when it has none)
        self._input_slots = [(t, index[id(t)], t.shape[1:] if t.shape and t.shape[0] is None
                              else None) for t in self.inputs]
        self._param_slots = [(t, index[id(t)]) for t in self.params]
        self._last: list = []
        self._last_grads: list = []
        self._seed = None
        # the first run's helpers (core/ahead.py), and the task they run after the forward
        # nodes: the trainer puts its optimizer's update there
        self._runs = 0
        self._ahead: ahead.FirstRun | None = None
        self.warm_extra = None
        # whether the returned gradients may be IndexedRows (core/rows.py): the trainer says
        # yes when its optimizer reads rows; plain calls get arrays
        self.row_grads = False

    # -- run time -----------------------------------------------------------------------
    def _feed(self, feeds: Mapping[Any, Any]) -> list:
        """The value slots of one call: checked feeds, then parameters and constants."""
        vals: list = [None] * len(self.order)
        be = self.be
        batch = None
        found = 0
        for t, slot, static in self._input_slots:
            v = feeds.get(t, _MISSING)
            if v is _MISSING:
                v = feeds.get(t.name, _MISSING)
                if v is _MISSING:
                    raise FeedError(f"input {t.name!r} of shape {fmt_shape(t.shape)} was not "
                                    "fed")
            found += 1
            arr = v if type(v) is np.ndarray or is_device_array(v) else np.asarray(v)
            if arr.dtype != t.dtype and not can_feed(arr.dtype, t.dtype):
                raise FeedError(f"input {t.name!r} expects {t.dtype}; a feed of dtype "
                                f"{arr.dtype} cannot be cast without losing information")
            shape = arr.shape
            if static is None:  # no batch dimension: the whole shape is fixed
                ok = shape == t.shape
            else:
                ok = len(shape) == len(t.shape) and shape[1:] == static
                if ok and batch is not None and shape[0] != batch:
                    raise FeedError(f"input {t.name!r} has batch size {shape[0]} but an "
                                    f"earlier input has {batch}")
                batch = shape[0] if ok else batch
            if not ok:
                raise FeedError(f"input {t.name!r} expects shape {fmt_shape(t.shape)}, got a "
                                f"feed of shape {fmt_shape(shape)}")
            vals[slot] = be.asarray(arr, t.dtype)
        if len(feeds) != found:
            self._check_unknown(feeds)
        for t, slot in self._param_slots:
            d = t.data
            if type(d) is not np.ndarray or be.name == "cpu":
                vals[slot] = d
            else:  # move a host parameter to the device once; it stays there between steps
                t.data = vals[slot] = be.asarray(d)
        return vals

    def _check_unknown(self, feeds: Mapping[Any, Any]) -> None:
        """Refuse feed keys that name no input of the graph (a typo must not pass silently);
        inputs of the graph that these outputs do not need may be fed and are ignored."""
        graph_inputs = {t.name for t in self.outputs[0].graph.nodes if t.kind == "input"}
        for k in feeds:
            name = k.name if isinstance(k, Tensor) else k
            if name not in graph_inputs:
                raise FeedError(f"unknown feed {k!r}; this program's inputs are "
                                f"{[i.name for i in self.inputs]}")

    def run(self, feeds: Mapping[Any, Any] | None = None, to_host: bool = True):
        """Run forward (and backward with ``wrt``); ``to_host=False`` keeps device arrays.

        Returned arrays are fresh copies on the host, so later calls never overwrite them.
        """
        self._balance()
        vals = self._feed(feeds or {})
        first = self._start()  # after the feeds are checked: a refused call is no first run
        step = None
        check = self.check_numerics
        try:
            for j, step in enumerate(self._fwd):
                op, ctx, ins, o = step
                if first is not None:
                    first.forward(j, vals)
                vals[o] = op.forward(ctx, *[vals[i] for i in ins])
                if check:
                    self._check(vals[o], o, "forward")
            grads = self._backward(vals, first) if self.wrt else None
        except (GraphError, FeedError):
            raise
        except Exception as e:  # a kernel failed: say which node, op and shapes
            raise self._explain(step, vals, e) from None
        self._last = vals
        outs = [self._fetch(vals[i], to_host) for i in self._out_idx]
        outs = outs[0] if self.single else outs
        if grads is None:
            return outs
        return outs, [self._fetch(g, to_host) for g in grads]

    __call__ = run

    def _start(self) -> ahead.FirstRun | None:
        """The helpers of a first run (None at later runs, which stop the first's)."""
        self._runs += 1
        if self._ahead is not None:
            self._ahead.close()
            self._ahead = None
        if self._runs == 1 and self.wrt and ahead.enabled(self.be):
            self._ahead = ahead.FirstRun(self)
        return self._ahead

    def wait_ahead(self) -> None:
        """Before the caller runs ``warm_extra``'s work itself: wait while a helper of the
        first run compiles it (then it loads from the cache)."""
        if self._ahead is not None:
            self._ahead.wait_extra()

    def _backward(self, vals: list, first: ahead.FirstRun | None = None) -> list:
        be = self.be
        check = self.check_numerics
        grads: list = [None] * len(vals)
        y = vals[self._loss_idx]
        seed = self._seed  # d loss / d loss = 1, kept between calls (nothing writes into it)
        if seed is None or seed.shape != y.shape or seed.dtype != y.dtype:
            seed = self._seed = be.asarray(np.ones(y.shape, y.dtype))
        grads[self._loss_idx] = seed
        for j, step in enumerate(self._bwd):
            op, ctx, ins, o, need = step
            g = grads[o]
            if g is None:
                continue
            g = grads[o] = taken_by(op, g)  # written out, unless the op reads it as it is
            if first is not None:
                first.backward(j, vals)
            try:
                gs = op.backward(ctx, g, vals[o], *[vals[i] for i in ins])
            except Exception as e:
                if isinstance(e, (GraphError, FeedError)):
                    raise
                raise self._explain(step[:4], vals, e, "backward") from None
            for i, gi, nd in zip(ins, gs, need):
                if nd and gi is not None:
                    # fan-out: a node read twice receives the sum of both gradients
                    grads[i] = gi if grads[i] is None else be.add(dense(grads[i]), dense(gi))
            if check:
                for i, nd in zip(ins, need):
                    if nd and grads[i] is not None:
                        self._check(grads[i], o, "backward")
        self._last_grads = grads
        out = []
        rows_ok = self.row_grads
        for w, i in zip(self.wrt, self._wrt_idx):
            g = grads[i] if rows_ok and type(grads[i]) is IndexedRows else dense(grads[i])
            out.append(g if g is not None else be.zeros(w.shape if w.kind == "parameter"
                                                         else vals[i].shape, w.dtype))
        return out

    def values(self) -> dict[Tensor, np.ndarray]:
        """Every node's value from the last call, on the host (for drawings and debugging)."""
        return {t: self.be.to_host(v) for t, v in zip(self.order, self._last) if v is not None}

    def gradients(self) -> dict[Tensor, np.ndarray]:
        """The gradient of the loss at every node the last backward pass reached (host)."""
        return {t: self.be.to_host(dense(g)) for t, g in zip(self.order, self._last_grads)
                if g is not None}

    def _fetch(self, a, to_host: bool):
        if not to_host:
            return a
        a = dense(a)
        h = self.be.to_host(a)
        return h.copy() if h is a else h

    def _check(self, a, o: int, phase: str) -> None:
        if not self.be.is_finite(stored(a)):
            t = self.order[o]
            what = "value" if phase == "forward" else "gradient"
            raise NumericsError(f"check_numerics: node {t.name!r} ({t.op_name}, shape "
                                f"{fmt_shape(t.shape)}) produced a non-finite {what} in the "
                                f"{phase} pass")

    def _explain(self, step, vals, e: Exception, phase: str = "forward") -> GraphError:
        if step is None:
            return GraphError(f"{type(e).__name__}: {e}")
        op, _, ins, o = step[:4]
        t = self.order[o]
        shapes = ", ".join(f"{self.order[i].name}: {fmt_shape(np.shape(vals[i]))} "
                           f"{getattr(vals[i], 'dtype', '?')}" for i in ins)
        msg = str(e).strip().splitlines()
        first = msg[0] if msg else type(e).__name__
        return GraphError(f"{phase} of node {t.name!r} (op {op!r}) failed on inputs "
                          f"[{shapes}]: {type(e).__name__}: {first}")

    def __repr__(self) -> str:
        return (f"<Program {len(self._fwd)} ops on {self.device}, "
                f"{len(self._bwd)} in backward, wrt={[w.name for w in self.wrt]}>")


def compile(outputs: Tensor | Sequence[Tensor], wrt: Sequence[Tensor] = (), device: str = "cpu",
            training: bool = False, check_numerics: bool = False, seed: int = 0) -> Program:
    """Compile outputs into a Program; with ``wrt``, calls return ``(value, grads)``.

    With ``wrt`` the first output is the loss that is differentiated, a scalar (a shape of
    ones; otherwise a GraphError, as PyTorch refuses to seed a non-scalar); a list of outputs
    ``[loss, *aux]`` returns ``([loss, *aux], grads)``, the aux values of the same forward pass
    (the parts of a loss, predictions), as JAX's ``has_aux``.
    ``wrt`` may name Parameters and Inputs (gradients with respect to data: saliency maps).
    ``training=True`` turns on the ops that differ in training (dropout).
    """
    return Program(outputs, wrt, device=device, training=training,
                   check_numerics=check_numerics, seed=seed)
