"""Optimizers with Keras' names, arguments and update formulas.

``opt.apply(grads, params)`` (or ``opt.apply_gradients(zip(grads, params))``) updates each
``param.data`` in place with fused kernels (on the CPU one compiled call for all the small
parameters of a step), found on the backend that owns the array (``graphnet.kernels.cpu``
for NumPy arrays, ``graphnet.kernels.cuda`` for device arrays). A training loop hands over
the same gradient buffers every step, so the grouping of one step is kept for the next
(``_plan``). Every optimizer takes ``clipnorm`` (per-gradient L2 clip), ``clipvalue`` (elementwise
clip), ``global_clipnorm`` (clip all gradients by their joint L2 norm) and ``weight_decay``
(decoupled: ``p <- p - lr * wd * p`` before the update); ``learning_rate`` may be a float or a
schedule of the step. ``opt.last_grad_norms`` holds the global gradient norm before and after
clipping (when clipping is on or ``opt.track_grad_norms`` is set), for drawings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from ..core.backend import get_backend, is_device_array
from ..core.errors import GraphError
from ..core.rows import IndexedRows
from . import schedules

__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "RMSProp", "Adam", "AdamW", "get",
           "serialize", "deserialize"]

_BACKENDS: dict[str, Any] = {}


def _backend_of(array) -> Any:
    """The kernel namespace that owns ``array``: CUDA for device arrays, else the CPU."""
    device = "cuda" if is_device_array(array) else "cpu"
    be = _BACKENDS.get(device)
    if be is None:
        be = _BACKENDS[device] = get_backend(device)
    return be


class Optimizer:
    """Base class: learning rate (float or schedule), clipping, weight decay, step count.

    Subclasses define ``_slots(param, be)`` (the state arrays of one parameter) and
    ``_update(be, ps, gs, slots, lr, scales, clip, decays)`` (the fused kernels' entry on
    that backend, for all its parameters at once).
    """

    def __init__(self, learning_rate: float | Callable[[int], float] = 0.001,
                 weight_decay: float | None = None, clipnorm: float | None = None,
                 clipvalue: float | None = None, global_clipnorm: float | None = None,
                 name: str | None = None) -> None:
        if sum(c is not None for c in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError("only one of clipnorm, clipvalue and global_clipnorm can be set")
        for k, c in (("clipnorm", clipnorm), ("clipvalue", clipvalue),
                     ("global_clipnorm", global_clipnorm)):
            if c is not None and not c > 0:
                raise ValueError(f"{k} must be positive, got {c}")
        self._learning_rate = learning_rate if callable(learning_rate) else float(learning_rate)
        self.weight_decay = weight_decay
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.name = name or type(self).__name__.lower()
        self.iterations = 0
        self.track_grad_norms = False
        self.last_grad_norms: tuple[float, float] | None = None
        self._state: dict = {}  # id(param) -> (param, slots)
        self._pending: dict = {}  # id(param) -> (param, host slot arrays) from a checkpoint
        self._no_decay_ids: set[int] = set()
        self._no_decay_names: list[str] = []
        # apply's plan for the arrays of its last call; _version counts the changes of state
        # and of weight-decay exemptions that make a plan stale
        self._plan: tuple | None = None
        self._version = 0

    # -- learning rate --------------------------------------------------------------------
    @property
    def learning_rate(self) -> float:
        """The learning rate of the next update (a schedule is evaluated at ``iterations``)."""
        lr = self._learning_rate
        return float(lr(self.iterations)) if callable(lr) else lr

    @learning_rate.setter
    def learning_rate(self, value: float | Callable[[int], float]) -> None:
        if callable(value):
            self._learning_rate = value
        elif isinstance(self._learning_rate, schedules.LearningRateSchedule):
            raise TypeError("this optimizer was created with a LearningRateSchedule as its "
                            "learning_rate, so its learning rate cannot be set to a number")
        else:
            self._learning_rate = float(value)

    # -- state ----------------------------------------------------------------------------
    def build(self, params: Sequence) -> None:
        """Create the state (slots) of every parameter now rather than at its first update."""
        for p in params:
            self._slots_of(p)

    def _slots_of(self, param) -> tuple:
        entry = self._state.get(id(param))
        if entry is None or entry[0] is not param:
            data = param.data
            be = _backend_of(data)
            slots = self._slots(data, be)
            saved = self._pending.pop(id(param), None)
            if saved is not None and saved[0] is param:  # resume: the checkpoint's values,
                slots = tuple(None if s is None else be.asarray(h.copy())  # on data's device
                              for s, h in zip(slots, saved[1]))
            entry = self._state[id(param)] = (param, slots)
            self._version += 1
        return entry[1]

    def state_arrays(self, params: Sequence) -> list[list]:
        """Each parameter's slot arrays on the host (None for an unused slot; an empty list
        for a parameter not updated yet): what a checkpoint saves to resume training."""
        out = []
        for p in params:
            entry = self._state.get(id(p))
            if entry is None or entry[0] is not p:
                pending = self._pending.get(id(p))
                out.append(list(pending[1]) if pending and pending[0] is p else [])
                continue
            out.append([None if s is None else np.array(_backend_of(s).to_host(s))
                        for s in entry[1]])
        return out

    def load_state(self, iterations: int, params: Sequence, arrays: Sequence) -> None:
        """Resume from ``state_arrays``: the step count now, each parameter's slots when it is
        first updated (on whatever device its data is by then)."""
        self.iterations = int(iterations)
        self._version += 1
        for p, slots in zip(params, arrays):
            if slots:
                self._state.pop(id(p), None)
                self._pending[id(p)] = (p, list(slots))

    def _slots(self, data, be) -> tuple:
        raise NotImplementedError

    @property
    def variables(self) -> list:
        """The step count and every slot array, in the order parameters were first seen."""
        return [self.iterations] + [s for _, slots in self._state.values() for s in slots
                                    if s is not None]

    def exclude_from_weight_decay(self, var_list: Sequence | None = None,
                                  var_names: Sequence[str] | None = None) -> None:
        """Exempt parameters (by object, or by a substring of their name) from weight decay."""
        self._no_decay_ids |= {id(v) for v in var_list or ()}
        self._no_decay_names += list(var_names or ())
        self._version += 1

    def _exempt(self, param) -> bool:
        """Whether ``param`` is excluded from weight decay."""
        if id(param) in self._no_decay_ids:
            return True
        name = getattr(param, "name", "")
        return any(s in name for s in self._no_decay_names)

    # -- updates --------------------------------------------------------------------------
    def apply_gradients(self, grads_and_vars: Iterable[tuple]) -> int:
        """Keras' form: ``opt.apply_gradients(zip(grads, params))``; returns ``iterations``."""
        pairs = list(grads_and_vars)
        self.apply([g for g, _ in pairs], [p for _, p in pairs])
        return self.iterations

    def apply(self, grads: Sequence, params: Sequence) -> None:
        """One update of every parameter from its gradient; a None gradient is skipped."""
        grads, params = list(grads), list(params)
        if len(grads) != len(params):
            raise GraphError(f"{self.name}: {len(grads)} gradients for {len(params)} parameters")
        rows = []  # (IndexedRows, parameter) updated by the row form, after the rest
        for k, (g, p) in enumerate(zip(grads, params)):
            if type(g) is IndexedRows:
                if self._by_rows(g, p.data):
                    rows.append((g, p))
                    grads[k] = None
                else:
                    grads[k] = g.dense()
        datas = [p.data for p in params]
        key = (self._version, *map(id, grads), *map(id, datas))
        plan = self._plan
        if plan is None or plan[0] != key:
            plan = self._planned(grads, params, datas)  # may create slots: a new _version
            # a training loop hands over the same gradient buffers every step: keep the
            # plan for them (it holds the arrays, so their ids are not reused meanwhile)
            key = (self._version, *key[1:])
            self._plan = (key, *plan) if plan[2] else None
        else:
            plan = plan[1:]
        pairs, groups, _ = plan
        lr = self.learning_rate
        scales = self._clip_scales(pairs)
        clip = math.inf if self.clipvalue is None else float(self.clipvalue)
        wd = lr * self.weight_decay if self.weight_decay else 0.0
        for be, ps, gs, slots, ks, decaying in groups:
            decays = [wd if d else 0.0 for d in decaying] if wd else None
            self._update(be, ps, gs, slots, lr,
                         None if scales is None else [scales[k] for k in ks], clip, decays)
        for g, p in rows:
            self._check_shape(g, p, p.data)
            decay = wd if wd and not self._exempt(p) else 0.0
            self._update_rows(_backend_of(p.data), p.data, g, self._slots_of(p), lr, clip,
                              decay)
        self.iterations += 1

    def _by_rows(self, g: IndexedRows, data) -> bool:
        """Whether ``g`` updates ``data`` in its row form: this optimizer has one on the data's
        backend, no gradient norm is asked for (clipnorm, global_clipnorm, tracking: those
        read the dense gradient), and the batch names fewer rows than the table has (a small
        table's dense gradient costs less than sorting its rows)."""
        be = _backend_of(data)
        return (self._rows_kernel is not None and hasattr(be, self._rows_kernel)
                and not (self.clipnorm or self.global_clipnorm or self.track_grad_norms)
                and g.indices.size < g.shape[0] and len(g.shape) == 2)

    # the backend's row-form kernel (kernels/cpu/optim.py), None where the optimizer has none
    _rows_kernel: str | None = None

    def _update_rows(self, be, data, g: IndexedRows, slots: tuple, lr: float, clip: float,
                     decay: float) -> None:
        """Update ``data`` from a row gradient (only where ``_by_rows`` said yes)."""
        raise NotImplementedError

    def _planned(self, grads: list, params: list, datas: list) -> tuple:
        """``(pairs, groups, reusable)`` of one ``apply``: the (gradient, parameter) pairs
        updated (shapes checked) and, per backend, the arrays its update call takes:
        ``(be, params' data, gradients, slots by kind, pair indices, decay flags)``.
        ``reusable``: no gradient was copied, so the same arrays give the same plan."""
        pairs, groups, reusable = [], {}, True
        for g, p, data in zip(grads, params, datas):
            if g is None:
                continue
            self._check_shape(g, p, data)
            be = _backend_of(data)
            grp = groups.get(be)
            if grp is None:
                grp = groups[be] = ([], [], [], [], [])
            ga = be.asarray(g)
            reusable = reusable and ga is g
            grp[0].append(data)
            grp[1].append(ga)
            grp[2].append(self._slots_of(p))
            grp[3].append(len(pairs))
            grp[4].append(not self._exempt(p))
            pairs.append((g, p))
        return pairs, [(be, ps, gs, [list(s) for s in zip(*slots)], ks, dec)
                       for be, (ps, gs, slots, ks, dec) in groups.items()], reusable

    def _check_shape(self, g, p, data) -> None:
        if tuple(g.shape) != tuple(data.shape):
            raise GraphError(f"{self.name}: gradient of shape {tuple(g.shape)} for parameter "
                             f"{getattr(p, 'name', p)!r} of shape {tuple(data.shape)}")

    def _clip_scales(self, pairs: list) -> list[float] | None:
        """Per-gradient factors for clipnorm / global_clipnorm (None: all 1); records the
        norms."""
        if not (self.clipnorm or self.clipvalue or self.global_clipnorm
                or self.track_grad_norms):
            self.last_grad_norms = None
            return None
        clip = math.inf if self.clipvalue is None else float(self.clipvalue)
        sq = [_backend_of(g).grad_sq_norms(g, clip) for g, _ in pairs]
        before = math.sqrt(sum(s for s, _ in sq))
        if self.global_clipnorm:
            # Keras: g * clip_norm / max(global_norm, clip_norm)
            c = self.global_clipnorm
            scale = c / max(before, c)
            self.last_grad_norms = (before, before * scale)
            return [scale] * len(pairs)
        if self.clipnorm:
            c = self.clipnorm
            scales = [c / max(math.sqrt(s), c) for s, _ in sq]
            after = math.sqrt(sum(s * k * k for (s, _), k in zip(sq, scales)))
            self.last_grad_norms = (before, after)
            return scales
        self.last_grad_norms = (before, math.sqrt(sum(c for _, c in sq)))
        return None

    def _update(self, be, ps: list, gs: list, slots: list, lr: float, scales: list | None,
                clip: float, decays: list | None) -> None:
        """Update parameters ``ps`` from ``gs``; ``slots[j]`` lists slot j of each; scales
        and decays are per parameter (None: 1 and 0 for all)."""
        raise NotImplementedError

    # -- configuration --------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Constructor arguments (a schedule is serialized as ``{"class_name", "config"}``)."""
        lr = self._learning_rate
        if isinstance(lr, schedules.LearningRateSchedule):
            lr = schedules.serialize(lr)
        return {"name": self.name, "learning_rate": lr, "weight_decay": self.weight_decay,
                "clipnorm": self.clipnorm, "clipvalue": self.clipvalue,
                "global_clipnorm": self.global_clipnorm}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Optimizer:
        config = dict(config)
        lr = config.get("learning_rate")
        if isinstance(lr, dict):
            config["learning_rate"] = schedules.deserialize(lr)
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} lr={self._learning_rate!r} iterations={self.iterations}>"


class SGD(Optimizer):
    """``m <- momentum m - lr g; p <- p + m`` (Nesterov: ``p <- p + momentum m - lr g``);
    plain ``p <- p - lr g`` when momentum is 0."""

    def __init__(self, learning_rate=0.01, momentum: float = 0.0, nesterov: bool = False,
                 **kwargs) -> None:
        super().__init__(learning_rate, **kwargs)
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _slots(self, data, be) -> tuple:
        return (be.zeros(data.shape, data.dtype) if self.momentum else None,)

    def _update(self, be, ps, gs, slots, lr, scales, clip, decays) -> None:
        be.sgd_update(ps, gs, slots[0], lr, self.momentum, self.nesterov, scales, clip, decays)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class RMSprop(Optimizer):
    """``v <- rho v + (1 - rho) g^2; p <- p - lr g / sqrt(v + eps)`` (epsilon inside the root,
    as Keras); ``centered`` subtracts the squared mean gradient; optional momentum."""

    def __init__(self, learning_rate=0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False, **kwargs) -> None:
        super().__init__(learning_rate, **kwargs)
        self.rho, self.momentum, self.epsilon = float(rho), float(momentum), float(epsilon)
        self.centered = bool(centered)

    def _slots(self, data, be) -> tuple:
        z = be.zeros
        return (z(data.shape, data.dtype),
                z(data.shape, data.dtype) if self.momentum else None,
                z(data.shape, data.dtype) if self.centered else None)

    def _update(self, be, ps, gs, slots, lr, scales, clip, decays) -> None:
        v, mom, avg = slots
        be.rms_update(ps, gs, v, mom, avg, lr, self.rho, 1.0 - self.rho, self.momentum,
                      self.epsilon, scales, clip, decays)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


RMSProp = RMSprop  # the spelling of the lectures; Keras spells it RMSprop


class Adagrad(Optimizer):
    """``acc <- acc + g^2; p <- p - lr g / sqrt(acc + eps)``, acc starting at
    ``initial_accumulator_value`` (the RMSProp kernel with rho = 1 and weight 1 on g^2)."""

    def __init__(self, learning_rate=0.001, initial_accumulator_value: float = 0.1,
                 epsilon: float = 1e-7, **kwargs) -> None:
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.epsilon = float(epsilon)

    def _slots(self, data, be) -> tuple:
        acc = be.zeros(data.shape, data.dtype)
        acc[...] = self.initial_accumulator_value
        return (acc,)

    def _update(self, be, ps, gs, slots, lr, scales, clip, decays) -> None:
        none = [None] * len(ps)
        be.rms_update(ps, gs, slots[0], none, none, lr, 1.0, 1.0, 0.0, self.epsilon, scales,
                      clip, decays)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(),
                "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


class Adam(Optimizer):
    """``m <- b1 m + (1 - b1) g; v <- b2 v + (1 - b2) g^2;
    p <- p - lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)`` (Keras' bias-corrected
    form, t = iterations + 1); ``amsgrad`` uses the running maximum of v."""

    def __init__(self, learning_rate=0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False, **kwargs) -> None:
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.amsgrad = bool(amsgrad)

    def _slots(self, data, be) -> tuple:
        z = be.zeros
        return (z(data.shape, data.dtype), z(data.shape, data.dtype),
                z(data.shape, data.dtype) if self.amsgrad else None)

    def _update(self, be, ps, gs, slots, lr, scales, clip, decays) -> None:
        m, v, vhat = slots
        be.adam_update(ps, gs, m, v, vhat, self._alpha(lr), self.beta_1, self.beta_2, self.epsilon,
                       scales, clip, decays)

    _rows_kernel = "adam_rows_update"

    def _update_rows(self, be, data, g, slots, lr, clip, decay) -> None:
        m, v, vhat = slots
        vals, src = g.rows()
        be.adam_rows_update(data, g.indices, vals, m, v, vhat, self._alpha(lr),
                            self.beta_1, self.beta_2, self.epsilon, 1.0, clip, decay, src=src)

    def _alpha(self, lr: float) -> float:
        """lr with both bias corrections of step t = iterations + 1 folded in."""
        t = self.iterations + 1
        return lr * math.sqrt(1.0 - self.beta_2 ** t) / (1.0 - self.beta_1 ** t)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay: ``p <- p - lr * weight_decay * p`` before each
    Adam step (Loshchilov and Hutter; Keras' default weight_decay 0.004)."""

    def __init__(self, learning_rate=0.001, weight_decay: float = 0.004, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, amsgrad: bool = False,
                 **kwargs) -> None:
        if weight_decay is None:
            raise ValueError("AdamW needs a weight_decay; use Adam for none")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad,
                         weight_decay=weight_decay, **kwargs)


_NAMES = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad}


def serialize(optimizer: Optimizer) -> dict[str, Any]:
    """``{"class_name": ..., "config": ...}``, as Keras writes an optimizer."""
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(config: dict[str, Any]) -> Optimizer:
    """The optimizer :func:`serialize` wrote."""
    cls = _NAMES.get(str(config.get("class_name", "")).lower())
    if cls is None:
        raise ValueError(f"unknown optimizer {config.get('class_name')!r}; "
                         f"known: {sorted(_NAMES)}")
    return cls.from_config(config.get("config", {}))


def get(identifier: str | dict | Optimizer) -> Optimizer:
    """An optimizer from Keras' string name ("adam", "sgd", ...), a config, or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = _NAMES.get(identifier.lower())
        if cls is not None:
            return cls()
    raise ValueError(f"unknown optimizer {identifier!r}; give an Optimizer or one of "
                     f"{sorted(_NAMES)}")
