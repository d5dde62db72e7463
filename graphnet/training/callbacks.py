"""Callbacks that ``Model.fit`` calls around epochs and batches, as in Keras.

``logs`` is one dict per epoch (``loss``, metrics, ``val_loss``, ``val_<metric>``) shared by
every callback in order, so an earlier callback's entries are visible to later ones. A batch's
logs are a ``BatchLogs`` mapping: its running loss is read from where it was computed (the
GPU) only when a callback looks, so a step on a device waits for nothing.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import numpy as np

from .saving import remove_stale_temporaries

__all__ = ["Callback", "CallbackList", "BatchLogs", "History", "EarlyStopping", "ModelCheckpoint",
           "LearningRateScheduler", "ProgressBar"]


class Callback:
    """Base class; ``self.model`` is set by fit before ``on_train_begin``.

    ``chief_only``: under a multi-process ``distribute`` strategy only rank 0 runs it (set it
    on callbacks that print or write files); the others run on every rank, on the same logs.
    """

    chief_only = False

    def __init__(self) -> None:
        self.model: Any = None  # the Model being trained (set_model)
        self.params: dict[str, Any] = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs: dict | None = None) -> None: ...
    def on_train_end(self, logs: dict | None = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None: ...
    def on_batch_begin(self, batch: int, logs: dict | None = None) -> None: ...
    def on_batch_end(self, batch: int, logs: dict | None = None) -> None: ...


class BatchLogs(MutableMapping):
    """One batch's logs: ``loss`` (the epoch's running mean) and the metrics' running values,
    each read on first access (on a GPU that waits for the step to finish, so fit hands
    them over unread); callbacks may add entries, as to a dict. Read it inside the
    callback: the running values move on with the next batch."""

    def __init__(self, values: dict[str, Callable[[], float] | float]) -> None:
        self._logs = {k: None if callable(v) else v for k, v in values.items()}
        self._unread = {k: v for k, v in values.items() if callable(v)}

    def __getitem__(self, key: str) -> Any:
        read = self._unread.pop(key, None)
        if read is not None:
            self._logs[key] = read()
        return self._logs[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._unread.pop(key, None)
        self._logs[key] = value

    def __delitem__(self, key: str) -> None:
        self._unread.pop(key, None)
        del self._logs[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._logs)

    def __len__(self) -> int:
        return len(self._logs)

    def copy(self) -> dict[str, Any]:
        return dict(self)

    def __repr__(self) -> str:
        return repr(dict(self))


class CallbackList(Callback):
    """Calls every callback in order (fit's internal fan-out)."""

    def __init__(self, callbacks: list[Callback], model: Any, params: dict[str, Any]) -> None:
        super().__init__()
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(params)

    def _each(self, method: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, method)(*args)

    def on_train_begin(self, logs=None): self._each("on_train_begin", logs)
    def on_train_end(self, logs=None): self._each("on_train_end", logs)
    def on_epoch_begin(self, epoch, logs=None): self._each("on_epoch_begin", epoch, logs)
    def on_epoch_end(self, epoch, logs=None): self._each("on_epoch_end", epoch, logs)
    def on_batch_begin(self, batch, logs=None): self._each("on_batch_begin", batch, logs)
    def on_batch_end(self, batch, logs=None): self._each("on_batch_end", batch, logs)


class History(Callback):
    """Records each epoch's logs: ``history.history["loss"]`` is a list over epochs."""

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None):
        self.epoch = []  # a second fit starts a new record, as Keras does
        self.history = {}

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)


def _mode_op(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if ("acc" in monitor or monitor.endswith("auc")) else "min"
    return mode


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    Keras' rule: each epoch that does not improve on the best adds one to ``wait``; training
    stops once ``wait >= patience``. With ``restore_best_weights`` the weights of the best
    epoch are put back when training ends.
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0,
                 verbose: int = 0, mode: str = "auto", baseline: float | None = None,
                 restore_best_weights: bool = False, start_from_epoch: int = 0) -> None:
        super().__init__()
        self.monitor = monitor
        self.min_delta = abs(float(min_delta))
        self.patience = int(patience)
        self.verbose = verbose
        self.mode = _mode_op(monitor, mode)
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = int(start_from_epoch)

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = np.inf if self.mode == "min" else -np.inf
        if self.baseline is not None:
            self.best = float(self.baseline)
        self.best_weights: list | None = None
        self.best_epoch = 0

    def _improved(self, current: float, reference: float) -> bool:
        if self.mode == "min":
            return current < reference - self.min_delta
        return current > reference + self.min_delta

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"EarlyStopping monitors {self.monitor!r}, which is not in the logs "
                          f"{sorted(logs or {})}; pass validation data or monitor='loss'",
                          stacklevel=2)
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()  # a fallback if nothing improves
        self.wait += 1
        if self._improved(float(current), self.best):
            self.best = float(current)
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(f"Restoring the weights of epoch {self.best_epoch + 1}")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model (or weights) after each epoch; ``filepath`` may hold ``{epoch:02d}`` and
    log keys such as ``{val_loss:.3f}``. ``save_best_only`` saves only on improvement."""

    chief_only = True  # one writer under gn.distribute

    def __init__(self, filepath: str | os.PathLike, monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, save_weights_only: bool = False,
                 mode: str = "auto") -> None:
        super().__init__()
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.mode = _mode_op(monitor, mode)
        self.best = np.inf if self.mode == "min" else -np.inf

    def on_train_begin(self, logs=None):
        # the temporary files that killed earlier runs left beside these checkpoints
        remove_stale_temporaries(self.filepath)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(f"ModelCheckpoint monitors {self.monitor!r}, which is not in the "
                              f"logs {sorted(logs)}; nothing saved", stacklevel=2)
                return
            better = current < self.best if self.mode == "min" else current > self.best
            if not better:
                return
            self.best = float(current)
        if self.verbose:
            print(f"Epoch {epoch + 1}: saving model to {path}")
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


class LearningRateScheduler(Callback):
    """Set the optimizer's learning rate each epoch to ``schedule(epoch, lr)``."""

    def __init__(self, schedule: Callable[[int, float], float], verbose: int = 0) -> None:
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        opt = self.model.optimizer
        lr = float(self.schedule(epoch, float(opt.learning_rate)))
        if not np.isfinite(lr):
            raise ValueError(f"the learning-rate schedule returned {lr} at epoch {epoch}")
        opt.learning_rate = lr
        if self.verbose:
            print(f"Epoch {epoch + 1}: learning rate {lr:.6g}")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


def _fmt_logs(logs: dict) -> str:
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items() if isinstance(v, (int, float)))


class ProgressBar(Callback):
    """One tqdm bar per epoch with the running loss and metrics (fit's ``verbose=1``);
    ``verbose=2`` prints one line per epoch instead."""

    chief_only = True

    def __init__(self, verbose: int = 1) -> None:
        super().__init__()
        self.verbose = verbose
        self.bar = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        if self.verbose == 1:
            try:
                from tqdm.auto import tqdm
            except ImportError:  # tqdm is optional: fall back to a line per epoch
                self.verbose = 2
                return
            self._shown = -math.inf
            self.bar = tqdm(total=self.params.get("steps"), unit="batch", leave=True,
                            desc=f"Epoch {epoch + 1}/{self.params.get('epochs')}",
                            file=sys.stdout, dynamic_ncols=True)

    def on_batch_end(self, batch, logs=None):
        if self.bar is None:
            return
        # the figures are read (on a GPU, a wait for the step) only as often as the bar is
        # drawn, and before the update that may draw it
        now = time.monotonic()
        if logs and (now - self._shown >= self.bar.mininterval
                     or self.bar.n + 1 >= (self.bar.total or 0)):
            self.bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()}, refresh=False)
            self._shown = now
        self.bar.update(1)

    def on_epoch_end(self, epoch, logs=None):
        if self.bar is not None:
            self.bar.set_postfix_str(_fmt_logs(logs or {}))
            self.bar.close()
            self.bar = None
        elif self.verbose == 2:
            print(f"Epoch {epoch + 1}/{self.params.get('epochs')} - {_fmt_logs(logs or {})}")

    def on_train_end(self, logs=None):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
