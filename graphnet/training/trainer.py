"""The training loop of a model, as Keras' trainers hold it: ``fit``, ``evaluate``, ``predict``
and their one-batch forms ``train_on_batch``, ``test_on_batch``, ``predict_on_batch``.

``Trainer`` is the half of ``Model`` that runs Programs on data: it checks the arrays first
(FeedError naming what is wrong), then runs mini-batch steps of the training program and the
optimizer, calling callbacks, and batches evaluation and prediction. The other half,
``training.model``, owns the graph, the layers and the Programs it plans.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..core.dtypes import can_feed
from ..core.errors import FeedError, GraphError
from ..core.program import Program
from ..core.tensor import Tensor, fmt_shape
from ..data.batches import batches
from . import callbacks as _callbacks
from .distribute import ONE_PROCESS

__all__ = ["Trainer"]


def _zero_update(optimizer, params: Sequence) -> Callable[[], None]:
    """The optimizer's update on zero gradients: what a first run's helper compiles after
    the forward nodes (in the helper's copy of the parameters and slots)."""
    def update() -> None:
        optimizer.apply([np.zeros(p.data.shape, p.data.dtype) for p in params], params)
    return update


class _RunningLoss:
    """The epoch's loss, weighted by batch size, summed where the loss is computed (on a GPU,
    on the device by the backend's ``running_sum``) and read only when asked."""

    def __init__(self, be: Any) -> None:
        self.be = be
        self.total = be.zeros((1,), np.float64)
        self.host = 0.0  # losses that are already Python floats (reduced over the ranks)
        self.seen = 0

    def add(self, loss: Any, size: int) -> None:
        if isinstance(loss, float):
            self.host += loss * size
        else:
            self.be.running_sum(self.total, loss, size)
        self.seen += size

    def sum(self) -> float:
        return self.host + float(self.be.to_host(self.total)[0])

    def mean(self) -> float:
        return self.sum() / self.seen if self.seen else 0.0


def _finish(be: Any, how: str, a: Any, axis: int) -> np.ndarray:
    """One of ``_train_outputs``'s predictions on the host: as is, or its logits through the
    softmax (along ``axis``) or sigmoid that the training program reads under."""
    if how == "as is":
        return np.asarray(be.to_host(a))
    z = np.asarray(be.to_host(a), np.float64)
    if how == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


class _Meter:
    """fit's training metrics. Where a program's arrays are its own each step (a backend
    that does not reuse buffers: the GPU) a batch's predictions and targets wait there and
    are brought over, in order, only when a metric's value is read (a callback, the bar, the
    epoch's end) or ``LIMIT`` batches are waiting: reading them each step would wait for
    the step to finish. Elsewhere each batch updates the metrics at once."""

    LIMIT = 64

    def __init__(self, be: Any, metrics: list) -> None:
        self.be, self.metrics, self.waiting = be, metrics, []
        self.defer = not be.reuses_buffers

    def add(self, outputs: list, targets: list) -> None:
        self.waiting.append((outputs, targets))
        if not self.defer or len(self.waiting) >= self.LIMIT:
            self.flush()

    def flush(self) -> None:
        for outputs, targets in self.waiting:
            for ms, out, y in zip(self.metrics, outputs, targets):
                pred, yt = _finish(self.be, *out), self.be.to_host(y)
                for m in ms:
                    m.update_state(yt, pred)
        self.waiting.clear()

    def reader(self, m: Any) -> Callable[[], float]:
        """``m``'s running value, read when called (after the waiting batches)."""
        def read() -> float:
            self.flush()
            return m.result()

        return read


class _Resident:
    """fit's data kept on the device for the whole fit (backends with ``resident_data``):
    one upload, then each batch gathered there (``take_rows``), in the order ``batches``
    drew. A host batch is a synchronous copy: the one wait of a step for the device."""

    LIMIT = 1 << 30  # bytes; larger data goes over batch by batch

    def __init__(self, be: Any, arrays: list) -> None:
        self.be, self.arrays = be, arrays

    @classmethod
    def of(cls, be: Any, arrays: list, tensors: list) -> _Resident | None:
        if not getattr(be, "resident_data", False) or sum(a.nbytes for a in arrays) > cls.LIMIT:
            return None
        # in the feeds' dtypes, cast once on the host where the program would cast each batch
        return cls(be, [be.asarray(a, t.dtype if can_feed(a.dtype, t.dtype) else None)
                        for a, t in zip(arrays, tensors)])

    def epoch(self, order: Any) -> Any:
        """The batches of one epoch of ``batches`` (its order and spans), on the device."""
        rows = None if order.order is None else self.be.asarray(order.order)  # one upload
        for i in range(len(order)):
            lo, hi = order.span(i)
            yield [self.be.take_rows(a, lo, hi, rows) for a in self.arrays]


def _guarded(method: Callable) -> Callable:
    """Under a multi-process ``distribute`` strategy, an exception in ``method`` on one rank
    ends every rank (``strategy.guard()``) instead of leaving the others in a collective."""
    @functools.wraps(method)
    def run(self, *args: Any, **kwargs: Any) -> Any:
        with self._distribution().guard():
            return method(self, *args, **kwargs)
    return run


class Trainer:
    """Mixin of ``Model``: uses its ``inputs``, ``outputs``, ``optimizer`` and the Programs of
    ``_build_programs()``."""

    # -- data checks ----------------------------------------------------------------------
    def _prepare_x(self, x: Any) -> list[np.ndarray]:
        """x as one checked array per input: shapes, dtypes, NaN/Inf, equal lengths."""
        self._ensure_built(x)
        self._require_built()
        if isinstance(x, Mapping):
            names = [t.name for t in self.inputs]
            unknown = [k for k in x if k not in names]
            if unknown:
                raise FeedError(f"x has entries {unknown} that are no inputs of model "
                                f"{self.name!r}; its inputs are {names}")
            missing = [n for n in names if n not in x]
            if missing:
                raise FeedError(f"x gives no data for inputs {missing}")
            xs = [x[n] for n in names]
        elif isinstance(x, (list, tuple)) and len(self.inputs) > 1:
            xs = list(x)
        else:
            xs = [x]
        if len(xs) != len(self.inputs):
            raise FeedError(f"model {self.name!r} has {len(self.inputs)} inputs "
                            f"{[t.name for t in self.inputs]}; x gives {len(xs)} arrays")
        out = []
        for t, a in zip(self.inputs, xs):
            a = np.asarray(a)
            if a.dtype.kind not in "fiub":
                raise FeedError(f"input {t.name!r} needs numbers, got an array of dtype {a.dtype}")
            if not can_feed(a.dtype, t.dtype):
                raise FeedError(f"input {t.name!r} expects {t.dtype}; data of dtype {a.dtype} "
                                "cannot be cast without losing information")
            want = t.shape
            if a.ndim != len(want) or any(d is not None and d != s for d, s in zip(want, a.shape)):
                feats = fmt_shape(want[1:]) if want[:1] == (None,) else fmt_shape(want)
                raise FeedError(f"input {t.name!r} expects samples of shape {feats} (features), "
                                f"batch {fmt_shape(want)}; got data of shape {fmt_shape(a.shape)}")
            if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
                bad = np.argwhere(~np.isfinite(a))[0]
                raise FeedError(f"data for input {t.name!r} contains NaN or Inf (first at index "
                                f"{tuple(int(i) for i in bad)})")
            out.append(np.ascontiguousarray(a, dtype=t.dtype))
        lens = {len(a) for a in out}
        if len(lens) > 1:
            raise FeedError(f"the input arrays have different numbers of samples: "
                            f"{[len(a) for a in out]}")
        if not out[0].shape or len(out[0]) == 0:
            raise FeedError("x holds no samples")
        return out

    def _prepare_y(self, y: Any, n: int, what: str = "y") -> list[np.ndarray]:
        p = self._build_programs()
        if isinstance(y, Mapping):
            ys = [y[self._output_name(i)] for i in range(len(self.outputs))]
        elif isinstance(y, (list, tuple)) and len(self.outputs) > 1:
            ys = list(y)
        else:
            ys = [y]
        if len(ys) != len(self.outputs):
            raise FeedError(f"model {self.name!r} has {len(self.outputs)} outputs; {what} "
                            f"gives {len(ys)} arrays")
        out = []
        for i, (yi, lo, o) in enumerate(zip(ys, p["losses"], self.outputs)):
            name = what if len(ys) == 1 else f"{what}[{i}]"
            yi = np.asarray(yi)
            if yi.ndim == 0 or len(yi) != n:
                raise FeedError(f"{name} has {len(yi) if yi.ndim else 0} samples but x has {n}; "
                                "give one target per sample")
            yi = lo.check_targets(yi, o.shape, name)
            out.append(np.ascontiguousarray(yi, dtype=p["targets"][i].dtype))
        return out

    def feeds(self, x: Any, y: Any = None) -> dict[Tensor, np.ndarray]:
        """The feed dict of the model's Programs for a batch ``x`` (and targets ``y``)."""
        xs = self._prepare_x(x)
        d = dict(zip(self.inputs, xs))
        if y is not None:
            d.update(zip(self.targets, self._prepare_y(y, len(xs[0]))))
        return d

    def _split(self, x: Any, y: Any, validation_split: float, validation_data: Any):
        xs = self._prepare_x(x)
        n = len(xs[0])
        ys = self._prepare_y(y, n)
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a tuple (x_val, y_val)")
            xv = self._prepare_x(validation_data[0])
            val = (xv, self._prepare_y(validation_data[1], len(xv[0]), "y_val"))
        elif validation_split:
            if not 0.0 < validation_split < 1.0:
                raise ValueError(f"validation_split must be in (0, 1), got {validation_split}")
            cut = int(n * (1.0 - validation_split))  # Keras: the last samples validate
            if cut == 0 or cut == n:
                raise ValueError(f"validation_split={validation_split} of {n} samples leaves "
                                 "an empty training or validation set")
            val = ([a[cut:] for a in xs], [a[cut:] for a in ys])
            xs, ys = [a[:cut] for a in xs], [a[:cut] for a in ys]
        return xs, ys, val

    def _distribution(self) -> Any:
        """The compile's ``distribute`` strategy when it spans several processes, else
        ``OneProcess`` (whose hooks are the identity)."""
        d = self._compiled.get("distribute") if self._compiled else None
        return d if d is not None and d.size > 1 else ONE_PROCESS

    # -- training and inference -----------------------------------------------------------
    @_guarded
    def fit(self, x: Any = None, y: Any = None, batch_size: int = 32, epochs: int = 1,
            verbose: int = 1, callbacks: Sequence[_callbacks.Callback] | None = None,
            validation_split: float = 0.0, validation_data: Any = None, shuffle: bool = True,
            seed: int | None = None, initial_epoch: int = 0) -> _callbacks.History:
        """Mini-batch training; returns a History whose ``history`` maps log keys to lists."""
        self._require_compiled()
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if x is None or y is None:
            raise ValueError("fit needs x and y")
        xs, ys, val = self._split(x, y, validation_split, validation_data)
        p = self._build_programs()
        if p["train"] is None:
            raise GraphError(f"model {self.name!r} has no trainable weights")
        n = len(xs[0])
        steps = -(-n // batch_size)
        self.history = _callbacks.History()
        cbs = [*(callbacks or []), self.history]
        dist = self._distribution()
        seed = dist.setup(self, p["params"], n, seed)
        if not dist.is_chief:  # rank 0 alone prints and writes files
            cbs, verbose = [cb for cb in cbs if not getattr(cb, "chief_only", False)], 0
        if verbose:
            cbs.append(_callbacks.ProgressBar(verbose))
        cbl = _callbacks.CallbackList(cbs, self, {"epochs": epochs, "steps": steps,
                                                  "batch_size": batch_size, "samples": n})
        rng = np.random.default_rng(seed)  # one stream: a new order every epoch
        train, params, metrics = p["train"], p["params"], p["metrics"]
        if dist.size == 1:  # the first run's helper compiles the update too (core/ahead.py)
            train.warm_extra = _zero_update(self.optimizer, params)
        # an embedding table's gradient may stay rows (core/rows.py) for the optimizer; the
        # ranks' all-reduce sums dense arrays
        train.row_grads = dist.size == 1
        feed_to = [*self.inputs, *p["targets"]]
        resident = _Resident.of(train.be, [*xs, *ys], feed_to) if dist.size == 1 else None
        self.stop_training = False
        cbl.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            cbl.on_epoch_begin(epoch, {})
            running, meter = _RunningLoss(train.be), _Meter(train.be, metrics)
            for ms in metrics:
                for m in ms:
                    m.reset_state()
            epoch_batches = batches(*xs, *ys, batch_size=batch_size, shuffle=shuffle, seed=rng)
            if resident is not None:  # the same order, gathered on the device
                epoch_batches = resident.epoch(epoch_batches)
            for b, arrays in enumerate(epoch_batches):
                cbl.on_batch_begin(b, {})
                size = arrays[0].shape[0]
                arrays = dist.shard(arrays)  # this rank's slice of the global batch
                if len(arrays[0]):
                    # the gradients and, in one process, the loss stay where they were
                    # computed: a step on a GPU reads nothing back
                    loss, grads = train.run(dict(zip(feed_to, arrays)), to_host=False)
                    if dist.size > 1:
                        loss = float(train.be.to_host(loss))
                else:
                    loss, grads = 0.0, None
                # the global batch's gradient and loss, on every rank
                loss, grads = dist.reduce_gradients(grads, loss, len(arrays[0]) / size)
                train.wait_ahead()
                self.optimizer.apply(grads, params)
                running.add(loss, size)
                if any(metrics) and len(arrays[0]):
                    meter.add(self._train_outputs(train, arrays[:len(xs)]), arrays[len(xs):])
                cbl.on_batch_end(b, _callbacks.BatchLogs(
                    {"loss": running.mean, **{m.name: meter.reader(m) for ms in metrics
                                              for m in ms}}))
            meter.flush()
            dist.reduce_metrics(metrics)
            logs = {"loss": running.mean(),
                    **{m.name: m.result() for ms in metrics for m in ms}}
            if val is not None:
                vlogs = self._evaluate_arrays(val[0], val[1], batch_size)
                logs.update({f"val_{k}": v for k, v in vlogs.items()})
            logs = dist.agree(logs)
            cbl.on_epoch_end(epoch, logs)
            self.stop_training = dist.agree(self.stop_training)
            if self.stop_training:
                break
        cbl.on_train_end()
        return self.history

    def _train_outputs(self, train: Program, xs: list) -> list[tuple]:
        """The training pass's own predictions, for training metrics, without a second pass:
        per output ``(how, array, axis)``, finished on the host by ``_finish``.

        A softmax or sigmoid output that the loss reads through (to its logits) is not in the
        training program: its logits come with how to apply it. Anything else runs the
        predict program on the batch.
        """
        index, last = train._index, train._last
        out, preds = [], None
        for k, o in enumerate(self.outputs):
            if id(o) in index:
                out.append(("as is", last[index[id(o)]], -1))
                continue
            src = o.inputs[0] if o.op is not None and o.inputs else None
            if src is not None and id(src) in index and o.op.name in ("softmax", "sigmoid"):
                out.append((o.op.name, last[index[id(src)]], getattr(o.op, "axis", -1)))
                continue
            if preds is None:
                preds = self.predict_program({t: a for t, a in zip(self.inputs, xs)})
            out.append(("as is", np.asarray(preds[k]), -1))
        return out

    def _train_predictions(self, train: Program, xs: list) -> list[np.ndarray]:
        """``_train_outputs`` finished on the host."""
        return [_finish(train.be, *o) for o in self._train_outputs(train, xs)]

    def _evaluate_arrays(self, xs: list, ys: list, batch_size: int) -> dict[str, float]:
        p = self._build_programs()
        prog, metrics = p["eval"], p["metrics"]
        for ms in metrics:
            for m in ms:
                m.reset_state()
        dist = self._distribution()  # each rank evaluates its slice; sums reduced below
        xs, ys = dist.shard(xs), dist.shard(ys)
        n, running = len(xs[0]), _RunningLoss(prog.be)
        for s in range(0, n, batch_size):
            sl = slice(s, s + batch_size)
            feeds = {t: a[sl] for t, a in zip(self.inputs, xs)}
            feeds.update({t: a[sl] for t, a in zip(p["targets"], ys)})
            loss, *preds = prog.run(feeds, to_host=False)  # the loss is summed where it is
            running.add(loss, len(xs[0][sl]))
            for ms, yk, pred in zip(metrics, ys, preds):
                for m in ms:
                    m.update_state(yk[sl], prog.be.to_host(pred))
        total, n = dist.reduce_metrics(metrics, running.sum(), n)
        return {"loss": total / n, **{m.name: m.result() for ms in metrics for m in ms}}

    @_guarded
    def evaluate(self, x: Any, y: Any, batch_size: int = 32, verbose: int = 0,
                 return_dict: bool = False) -> float | list[float] | dict[str, float]:
        """The loss (and metrics) over the data: a scalar without metrics, else a list."""
        self._require_compiled()
        xs = self._prepare_x(x)
        ys = self._prepare_y(y, len(xs[0]))
        logs = self._evaluate_arrays(xs, ys, int(batch_size))
        if verbose and self._distribution().is_chief:
            print(_callbacks._fmt_logs(logs))
        if return_dict:
            return logs
        vals = list(logs.values())
        return vals[0] if len(vals) == 1 else vals

    def predict(self, x: Any, batch_size: int = 32, verbose: int = 0
                ) -> np.ndarray | list[np.ndarray]:
        """Outputs for every sample, computed in batches (dropout off)."""
        xs = self._prepare_x(x)
        prog = self.predict_program
        chunks: list[list[np.ndarray]] = [[] for _ in self.outputs]
        for s in range(0, len(xs[0]), int(batch_size)):
            outs = prog({t: a[s:s + batch_size] for t, a in zip(self.inputs, xs)})
            for c, o in zip(chunks, outs):
                c.append(o)
        res = [np.concatenate(c) for c in chunks]
        return res[0] if len(res) == 1 else res

    # -- one batch at a time (Keras' *_on_batch) ------------------------------------------
    @staticmethod
    def _batch_logs(logs: dict[str, float], return_dict: bool
                    ) -> float | list[float] | dict[str, float]:
        """Keras' return convention: the dict, or the loss alone, or [loss, *metrics]."""
        if return_dict:
            return logs
        vals = list(logs.values())
        return vals[0] if len(vals) == 1 else vals

    @staticmethod
    def _no_weights(sample_weight: Any, class_weight: Any = None) -> None:
        if sample_weight is not None or class_weight is not None:
            raise NotImplementedError("graphnet's *_on_batch take no sample_weight or "
                                      "class_weight")

    def train_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None,
                       class_weight: Any = None, return_dict: bool = False
                       ) -> float | list[float] | dict[str, float]:
        """One gradient step on the batch ``(x, y)``, as Keras' ``train_on_batch``: returns
        the loss, or ``[loss, *metrics]`` with metrics (a dict with ``return_dict``).

        The values are this batch's (from the forward pass before the update; Keras 2's
        ``reset_metrics=True``); Keras 3 instead reports running means over the calls.
        """
        self._require_compiled()
        self._no_weights(sample_weight, class_weight)
        if y is None:
            raise ValueError("train_on_batch needs x and y")
        xs = self._prepare_x(x)
        ys = self._prepare_y(y, len(xs[0]))
        p = self._build_programs()
        train = p["train"]
        if train is None:
            raise GraphError(f"model {self.name!r} has no trainable weights")
        train.row_grads = True  # one process: the optimizer reads rows (core/rows.py)
        loss, grads = train.run(dict(zip([*self.inputs, *p["targets"]], [*xs, *ys])),
                                to_host=False)
        loss = float(train.be.to_host(loss))
        self.optimizer.apply(grads, p["params"])
        logs = {"loss": loss}
        if any(p["metrics"]):
            preds = self._train_predictions(train, xs)
            for ms, yk, pred in zip(p["metrics"], ys, preds):
                for m in ms:
                    m.reset_state()
                    m.update_state(yk, pred)
                    logs[m.name] = m.result()
        return self._batch_logs(logs, return_dict)

    def test_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None,
                      return_dict: bool = False) -> float | list[float] | dict[str, float]:
        """The loss (and metrics) of one batch, no update (Keras' ``test_on_batch``)."""
        self._require_compiled()
        self._no_weights(sample_weight)
        if y is None:
            raise ValueError("test_on_batch needs x and y")
        xs = self._prepare_x(x)
        ys = self._prepare_y(y, len(xs[0]))
        return self._batch_logs(self._evaluate_arrays(xs, ys, len(xs[0])), return_dict)

    def predict_on_batch(self, x: Any) -> np.ndarray | list[np.ndarray]:
        """The outputs of one batch in one pass (Keras' ``predict_on_batch``)."""
        xs = self._prepare_x(x)
        outs = self.predict_program(dict(zip(self.inputs, xs)))
        res = [np.asarray(o) for o in outs]
        return res[0] if len(res) == 1 else res

    def __call__(self, x: Any) -> np.ndarray | list[np.ndarray]:
        """``model(x_array)`` predicts (on arrays; graphnet models are not called on Tensors)."""
        if isinstance(x, Tensor):
            raise GraphError("calling a model on Tensors is not supported; call its layers")
        return self.predict(x)
