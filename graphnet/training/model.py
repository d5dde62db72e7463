"""Keras-style models over one graph: ``gn.Sequential`` and the functional ``gn.Model``.

A model owns a Graph, its input and output Tensors and the layers between them. ``compile``
adds target Inputs and the loss node (plus the layers' regularization penalties) to that
graph and plans three Programs, built once and cached: training (loss and gradients with
respect to the trainable Parameters, dropout on), evaluation (loss and predictions) and
prediction. The loop that runs them on data (``fit``, ``evaluate``, ``predict``) is the
``Trainer`` half, in ``training.trainer``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..core.errors import FeedError, GraphError
from ..core.graph import Graph
from ..core.program import Program
from ..core.program import compile as _compile
from ..core.tensor import Input, Parameter, Tensor, fmt_shape
from ..export import onnx as _onnx
from ..layers.base import Layer
from ..layers.base import deserialize as _deserialize_layer
from ..layers.base import serialize as _serialize_layer
from . import callbacks as _callbacks
from . import losses as _losses
from . import metrics as _metrics
from . import optimizers as _optimizers
from . import saving as _saving
from .summary import summarize
from .trainer import Trainer

__all__ = ["Model", "Sequential", "load_model"]


class Model(Trainer):
    """A functional model: ``gn.Model(inputs, outputs)`` over Tensors built by layers or ops."""

    _default_name = "model"

    def __init__(self, inputs: Tensor | Sequence[Tensor] | None = None,
                 outputs: Tensor | Sequence[Tensor] | None = None,
                 name: str | None = None) -> None:
        self.name = name or self._default_name
        self.graph: Graph | None = None
        self.inputs: list[Tensor] = []
        self.outputs: list[Tensor] = []
        self.optimizer = None
        self.stop_training = False
        self.history: _callbacks.History | None = None
        self._compiled: dict[str, Any] | None = None
        self._programs: dict[str, Any] | None = None
        self._plain_predict: Program | None = None
        if inputs is None and outputs is None:
            return
        if inputs is None or outputs is None:
            raise GraphError("gn.Model needs both inputs and outputs")
        self._single_output = isinstance(outputs, Tensor)
        self._set_io(inputs, outputs)

    # -- structure ------------------------------------------------------------------------
    def _set_io(self, inputs: Tensor | Sequence[Tensor], outputs: Tensor | Sequence[Tensor]
                ) -> None:
        ins = [inputs] if isinstance(inputs, Tensor) else list(inputs)
        outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
        if not ins or not outs:
            raise GraphError("a model needs at least one input and one output")
        for t in ins + outs:
            if not isinstance(t, Tensor):
                raise GraphError(f"model inputs and outputs must be gn Tensors, got {t!r}")
        for t in ins:
            if t.kind != "input":
                raise GraphError(f"model input {t.name!r} is a {t.kind} node; inputs must be "
                                 "made by gn.Input")
        g = ins[0].graph
        for t in ins + outs:
            if t.graph is not g:
                raise GraphError(f"tensor {t.name!r} belongs to graph {t.graph.name!r}, not "
                                 f"{g.name!r}; a model lives in one graph")
        nodes = outs[0].graph.ancestors(outs, stop=ins)
        ids = {id(t) for t in ins}
        stray = [t.name for t in nodes if t.kind == "input" and id(t) not in ids]
        if stray:
            raise GraphError(f"the outputs depend on inputs {stray} that are not among the "
                             f"model's inputs {[t.name for t in ins]}")
        self.graph, self.inputs, self.outputs, self._nodes = g, ins, outs, nodes
        self._programs = self._plain_predict = None

    @property
    def built(self) -> bool:
        return bool(self.outputs)

    def _require_built(self) -> None:
        if not self.built:
            raise GraphError(f"model {self.name!r} is not built yet: give input_shape=..., or "
                             "call fit/predict on data first")

    @property
    def layers(self) -> list[Layer]:
        """The layers between inputs and outputs, in the order they were first called."""
        if not self.built:
            return list(getattr(self, "_layers", []))
        out: list[Layer] = []
        for t in self._nodes:
            if t.layer is not None and t.layer not in out:
                out.append(t.layer)
        return out

    def get_layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"model {self.name!r} has no layer {name!r}; layers: "
                       f"{[la.name for la in self.layers]}")

    @property
    def weights(self) -> list[Parameter]:
        """Every Parameter: the layers' (in layer order) then any made outside layers."""
        self._require_built()
        ws = [w for la in self.layers for w in la.weights]
        ids = {id(w) for w in ws}
        return ws + [t for t in self._nodes if t.kind == "parameter" and id(t) not in ids]

    @property
    def weight_names(self) -> list[str]:
        """Checkpoint keys: ``<layer>/<weight>``, or the node name outside layers."""
        names = [n for la in self.layers for n in la.weight_names]
        return names + [w.name for w in self.weights[len(names):]]

    @property
    def trainable_weights(self) -> list[Parameter]:
        ws = [w for la in self.layers for w in la.trainable_weights]
        ids = {id(w) for la in self.layers for w in la.weights}
        return ws + [t for t in self._nodes if t.kind == "parameter" and id(t) not in ids
                     and t.trainable]

    def get_weights(self) -> list[np.ndarray]:
        return [np.array(w.value, copy=True) for w in self.weights]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Assign every weight (``get_weights`` order); all shapes are checked first."""
        ws, weights = self.weights, list(weights)
        if len(weights) != len(ws):
            raise GraphError(f"model {self.name!r} has {len(ws)} weights; set_weights got "
                             f"{len(weights)} arrays")
        arrays = []
        for w, n, v in zip(ws, self.weight_names, weights):
            a = np.asarray(v)
            if a.shape != w.shape:
                raise GraphError(f"weight {n!r} has shape {fmt_shape(w.shape)}; set_weights "
                                 f"got {fmt_shape(a.shape)}")
            arrays.append(a.astype(w.dtype))
        for w, a in zip(ws, arrays):
            w.value = a

    def count_params(self) -> int:
        return int(sum(int(np.prod(w.shape)) for w in self.weights))

    # -- compile --------------------------------------------------------------------------
    def compile(self, optimizer: Any = "adam", loss: Any = None, metrics: Sequence[Any] = (),
                device: str = "cpu", check_numerics: bool = False, seed: int = 0,
                distribute: Any = None) -> None:
        """Choose optimizer, loss and metrics; the Programs are built once, on first use.

        ``loss`` is a name, a gn.losses.Loss, a function ``(y_true, y_pred) -> scalar``, or
        one of these per output. ``seed`` seeds the training program's dropout masks.
        ``distribute``: a strategy such as ``gn.distribute.MPIDataParallel()`` for
        data-parallel ``fit`` over several processes (docs/distributed.md).
        """
        if loss is None:
            raise GraphError("compile needs a loss, e.g. loss='sparse_softmax_cross_entropy'")
        if distribute is not None and not hasattr(distribute, "reduce_gradients"):
            raise GraphError(f"distribute must be a strategy such as "
                             f"gn.distribute.MPIDataParallel(), got {distribute!r}")
        self.optimizer = _optimizers.get(optimizer)
        self._compiled = {"loss": loss, "metrics": list(metrics or []), "device": device,
                          "check_numerics": check_numerics, "seed": seed,
                          "distribute": distribute}
        self._programs = None
        if self.built:
            self._build_programs()

    def _require_compiled(self) -> None:
        if self._compiled is None:
            raise GraphError(f"model {self.name!r} is not compiled; call model.compile("
                             "optimizer=..., loss=...) before fit or evaluate")

    def _build_programs(self) -> dict[str, Any]:
        """Targets, loss node and the three Programs (once per compile)."""
        if self._programs is not None:
            return self._programs
        self._require_built()
        self._require_compiled()
        cfg = self._compiled
        spec = cfg["loss"]
        if isinstance(spec, Mapping):
            names = [self._output_name(i) for i in range(len(self.outputs))]
            missing = [n for n in names if n not in spec]
            if missing:
                raise GraphError(f"loss dict has no entry for outputs {missing}")
            specs = [spec[n] for n in names]
        elif isinstance(spec, (list, tuple)):
            if len(spec) != len(self.outputs):
                raise GraphError(f"{len(spec)} losses for {len(self.outputs)} outputs")
            specs = list(spec)
        else:
            specs = [spec] * len(self.outputs)
        loss_objs = [_losses.get(s) for s in specs]
        g = self.graph
        targets, terms = [], []
        with g:
            for i, (out, lo) in enumerate(zip(self.outputs, loss_objs)):
                shape = lo.target_shape(out.shape)
                # float targets take the prediction's precision (float64 models, checks)
                dtype = lo.target_dtype if np.dtype(lo.target_dtype).kind != "f" else out.dtype
                targets.append(Input(shape[1:], dtype=dtype,
                                     name=f"{self._output_name(i)}_target",
                                     batch=shape[:1] == (None,)))
            with g.name_scope("loss"):
                for out, lo, tgt in zip(self.outputs, loss_objs, targets):
                    terms.append(lo(tgt, out))
                for la in self.layers:
                    terms.extend(la.losses)
                total = terms[0]
                for t in terms[1:]:
                    total = total + t
        metric_objs = []
        for i, lo in enumerate(loss_objs):
            ms = []
            for m in cfg["metrics"]:
                obj = _metrics.get(m, from_logits=getattr(lo, "from_logits", False))
                if not isinstance(m, str) and len(self.outputs) > 1:
                    raise GraphError("with several outputs, give metrics by name")
                if len(self.outputs) > 1:
                    obj.name = f"{self._output_name(i)}_{obj.name}"
                ms.append(obj)
            metric_objs.append(ms)
        params = self.trainable_weights
        dev, chk = cfg["device"], cfg["check_numerics"]
        dist = cfg.get("distribute")  # each rank its own dropout masks
        seed = cfg["seed"] if dist is None else dist.program_seed(cfg["seed"])
        self._programs = {
            "targets": targets, "losses": loss_objs, "loss": total, "metrics": metric_objs,
            "params": params,
            "train": _compile(total, wrt=params, device=dev, training=True,
                              check_numerics=chk, seed=seed) if params else None,
            "eval": _compile([total, *self.outputs], device=dev, check_numerics=chk),
            "predict": _compile(list(self.outputs), device=dev, check_numerics=chk),
        }
        return self._programs

    def _output_name(self, i: int) -> str:
        t = self.outputs[i]
        return t.layer.name if t.layer is not None else t.name.replace("/", "_")

    @property
    def targets(self) -> list[Tensor]:
        """The target Inputs (one per output) that the loss compares predictions with."""
        return self._build_programs()["targets"]

    @property
    def loss_tensor(self) -> Tensor:
        """The scalar training loss node: the outputs' losses plus regularization."""
        return self._build_programs()["loss"]

    @property
    def train_program(self) -> Program:
        return self._build_programs()["train"]

    @property
    def eval_program(self) -> Program:
        return self._build_programs()["eval"]

    @property
    def predict_program(self) -> Program:
        if self._compiled is None:  # predict works on an uncompiled model too
            self._require_built()
            if self._plain_predict is None:
                self._plain_predict = _compile(list(self.outputs))
            return self._plain_predict
        return self._build_programs()["predict"]

    @property
    def metrics_names(self) -> list[str]:
        p = self._build_programs()
        return ["loss", *[m.name for ms in p["metrics"] for m in ms]]

    # -- building from data ---------------------------------------------------------------
    def _ensure_built(self, x: Any) -> None:
        """Sequential models without input_shape build from the first data they see."""

    # -- summary and saving ---------------------------------------------------------------
    def summary(self, line_length: int = 80, print_fn: Any = print) -> str:
        """Print (and return) a Keras-like table: layer (type), output shape, parameters."""
        text = summarize(self, not isinstance(self, Sequential), line_length)
        if print_fn is not None:
            print_fn(text)
        return text

    def get_config(self) -> dict[str, Any]:
        """The architecture as JSON-able data: inputs, every layer call and the outputs."""
        self._require_built()
        layers = self.layers
        lids = {id(la): la for la in layers}
        rank = {id(t): i for i, t in enumerate(self.graph.nodes)}
        node_ids = {id(t) for t in self._nodes}
        calls = []
        for la in layers:
            for c, (xs, outs) in enumerate(la.calls):
                if any(id(o) in node_ids for o in outs):
                    calls.append((rank[id(outs[0])], la, c, xs))
        calls.sort(key=lambda r: r[0])
        in_idx = {id(t): i for i, t in enumerate(self.inputs)}

        def ref(t: Tensor) -> list:
            if id(t) in in_idx:
                return ["input", in_idx[id(t)]]
            la = t.layer
            if la is not None and id(la) in lids:
                for c, (_, outs) in enumerate(la.calls):
                    for k, o in enumerate(outs):
                        if o is t:
                            return [la.name, c, k]
            raise GraphError(f"cannot save model {self.name!r}: tensor {t.name!r} was made by "
                             "an op outside any layer; save_weights works, or wrap it in a "
                             "layer")
        return {"name": self.name,
                "inputs": [{"name": t.name, "shape": list(t.shape[1:]), "dtype": t.dtype.name}
                           for t in self.inputs],
                "layers": [_serialize_layer(la) for la in layers],
                "calls": [{"layer": la.name, "args": [ref(t) for t in xs],
                           "single": la.call_single[c],
                           **({"kwargs": la.call_kwargs[c]} if la.call_kwargs[c] else {})}
                          for _, la, c, xs in calls],
                "outputs": [ref(t) for t in self.outputs],
                "single_output": getattr(self, "_single_output", len(self.outputs) == 1)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Model:
        g = Graph(config.get("name", "model"))
        with g:
            inputs = [Input(tuple(i["shape"]), dtype=i["dtype"], name=i["name"])
                      for i in config["inputs"]]
            layers = {s["config"]["name"]: _deserialize_layer(s) for s in config["layers"]}
            made: dict[str, list] = {n: [] for n in layers}

            def get(r: list) -> Tensor:
                if r[0] == "input":
                    return inputs[r[1]]
                return made[r[0]][r[1]][r[2]]
            for c in config["calls"]:
                la = layers[c["layer"]]
                args = [get(r) for r in c["args"]]
                out = la(args[0] if c["single"] else args, **c.get("kwargs", {}))
                made[c["layer"]].append([out] if isinstance(out, Tensor) else list(out))
            outs = [get(r) for r in config["outputs"]]
        return cls(inputs, outs[0] if config.get("single_output") and len(outs) == 1 else outs,
                   name=config.get("name"))

    def save(self, path: str | os.PathLike) -> None:
        """One file (a zip): architecture JSON, compile settings and every weight; atomic."""
        _saving.save_model(self, path)

    def export(self, path: str | os.PathLike, format: str = "onnx") -> str:  # noqa: A002
        """Write the inference graph (inputs to outputs, dropout removed) for other tools:
        ``format="onnx"`` (Keras 3's name) writes an ONNX file via ``gn.onnx.export``, which
        Netron draws and onnxruntime runs; the batch axis stays dynamic."""
        self._require_built()
        if str(format).lower() != "onnx":
            raise GraphError(f"model.export supports format='onnx', got {format!r}")
        return _onnx.export(self.outputs, path, inputs=self.inputs, name=self.name)

    def save_weights(self, path: str | os.PathLike) -> None:
        _saving.save_weights(self, path)

    def load_weights(self, path: str | os.PathLike) -> None:
        """Load weights saved by save/save_weights; names and shapes must all match."""
        _saving.load_weights(self, path)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}: {len(self.layers)} layers>"

    def _repr_mimebundle_(self, include=None, exclude=None):
        """Jupyter shows a model as its drawing (graphnet.visualize)."""
        try:
            from graphnet.visualize import mimebundle
        except ImportError:
            return None
        return mimebundle(self, include, exclude)


class Sequential(Model):
    """A stack of layers, each reading the previous one's output (``add`` appends)."""

    _default_name = "sequential"

    def __init__(self, layers: Sequence[Layer] | None = None,
                 input_shape: Sequence[int] | None = None, input_dtype: str | None = None,
                 name: str | None = None) -> None:
        super().__init__(name=name)
        self.graph = Graph(self.name)
        self._layers: list[Layer] = []
        self._input_shape = tuple(input_shape) if input_shape is not None else None
        self._input_dtype = input_dtype
        self._single_output = True
        for la in layers or []:
            self.add(la)

    def add(self, layer: Layer) -> None:
        """Append a layer; once the input shape is known it is called right away."""
        if not isinstance(layer, Layer):
            raise GraphError(f"Sequential.add takes a gn.layers.Layer, got {layer!r}")
        if any(la is layer for la in self._layers):
            raise GraphError(f"layer {layer.name!r} is already in this model")
        self._layers.append(layer)
        if self.built:
            with self.graph:
                out = layer(self.outputs[0])
            self._set_io(self.inputs, out)
        else:
            shape = self._input_shape or self._layers[0]._input_shape_arg
            if shape is not None:
                self._build(shape)

    def _build(self, shape: Sequence[int]) -> None:
        dtype = self._input_dtype or self._layers[0].input_dtype or "float32"
        with self.graph:
            x = Input(tuple(shape), dtype=dtype, name="input")
            out = x
            for la in self._layers:
                out = la(out)
        self._input_shape = tuple(shape)
        self._input_dtype = np.dtype(dtype).name
        self._set_io(x, out)

    def _ensure_built(self, x: Any) -> None:
        if self.built or not self._layers:
            return
        a = np.asarray(x[0] if isinstance(x, (list, tuple)) else x)
        if a.ndim < 2:
            raise FeedError(f"cannot infer the input shape of {self.name!r} from data of shape "
                            f"{fmt_shape(a.shape)}; give input_shape=...")
        self._build(a.shape[1:])

    @property
    def layers(self) -> list[Layer]:
        return list(self._layers)

    def pop(self) -> Layer:
        raise GraphError("Sequential.pop is not supported: graphs are append-only; build a "
                         "new Sequential from model.layers[:-1]")

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name,
                "input_shape": list(self._input_shape) if self._input_shape else None,
                "input_dtype": self._input_dtype,
                "layers": [_serialize_layer(la) for la in self._layers]}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        return cls([_deserialize_layer(s) for s in config["layers"]],
                   input_shape=config.get("input_shape"), input_dtype=config.get("input_dtype"),
                   name=config.get("name"))


def load_model(path: str | os.PathLike, compile: bool = True,  # noqa: A002
               distribute: Any = None) -> Model:
    """Rebuild a model saved by ``model.save``: architecture, weights and compile settings
    (with ``distribute``, e.g. ``gn.distribute.MPIDataParallel()``, to resume on N ranks)."""
    return _saving.load_model(path, {"Sequential": Sequential, "Model": Model}, compile=compile,
                              distribute=distribute)
