"""Model files: one zip holding ``graphnet.json`` (architecture, compile settings, a manifest of
every weight's key, shape and dtype) and one ``.npy`` member per weight.

A trained, compiled model also saves its optimizer's step count and slots (momenta, Adam's
moments) under ``optimizer/``, so ``load_model`` resumes training exactly where it stopped.

Writing goes through ``core.files.atomic_write``: a temporary file beside the target, then
``os.replace``, so a crash never leaves half a checkpoint and an existing file is replaced
only by a complete one; the debris of saves killed mid-write (SIGKILL) is removed by the
next save of the same target (never a live writer's file, nor another target's). Loading
reads and checks everything (zip CRCs, the manifest, every key and shape against the model)
before it assigns a single weight, so a bad file raises CheckpointError and changes nothing.
"""

from __future__ import annotations

import io
import json
import os
import warnings
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..core.errors import GraphError
from ..core.files import atomic_write, remove_stale_temporaries
from ..core.tensor import fmt_shape

__all__ = ["CheckpointError", "save_model", "save_weights", "load_model", "load_weights",
           "remove_stale_temporaries"]

FORMAT = "graphnet-model"
VERSION = 1
_MANIFEST = "graphnet.json"


class CheckpointError(GraphError):
    """A model file that cannot be read or does not match the model (names what and why)."""


def _model_config(model: Any) -> dict[str, Any]:
    return {"class_name": type(model).__name__, "config": model.get_config()}


def _compile_config(model: Any) -> dict[str, Any] | None:
    """Optimizer, losses and metrics by name, when the model is compiled and they can be saved."""
    from . import losses, metrics, optimizers
    cfg = model._compiled
    if cfg is None:
        return None
    try:
        spec = cfg["loss"]
        loss_list = spec if isinstance(spec, (list, tuple)) else [spec]
        out = {"optimizer": optimizers.serialize(model.optimizer),
               "loss": [losses.serialize(losses.get(s)) for s in loss_list],
               "loss_is_list": isinstance(spec, (list, tuple)),
               "metrics": [m if isinstance(m, str) else metrics.serialize(m)
                           for m in cfg["metrics"]],
               "device": cfg["device"]}
        json.dumps(out)
        return out
    except (GraphError, TypeError, ValueError) as e:
        warnings.warn(f"the compile settings of {model.name!r} are not saved ({e}); compile the "
                      "loaded model again", stacklevel=3)
        return None


def _write(path: str | os.PathLike, manifest: dict[str, Any],
           members: list[tuple[str, np.ndarray]]) -> None:
    """Write the zip (the manifest and ``(file, array)`` members) atomically to ``path``
    (``core.files.atomic_write``: first it removes what killed saves of ``path`` left)."""
    def write(f) -> None:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr(_MANIFEST, json.dumps(manifest, indent=1))
            for name, a in members:
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.ascontiguousarray(a), allow_pickle=False)
                zf.writestr(name, buf.getvalue())
    atomic_write(path, write)


def _weights_manifest(model: Any) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    model._require_built()
    names, arrays = model.weight_names, model.get_weights()
    if len(set(names)) != len(names):
        raise CheckpointError(f"model {model.name!r} has repeated weight names {names}; give "
                              "its layers distinct names")
    entries = [{"key": n, "shape": list(a.shape), "dtype": a.dtype.name,
                "file": f"weights/{i:04d}.npy"} for i, (n, a) in enumerate(zip(names, arrays))]
    return entries, arrays


def _optimizer_manifest(model: Any) -> tuple[dict[str, Any] | None, list]:
    """The optimizer's step count and every weight's slot arrays (Adam's moments...), so that
    a loaded model resumes training where it stopped; None before any training."""
    opt = getattr(model, "optimizer", None)
    if model._compiled is None or opt is None or not opt.iterations:
        return None, []
    slots, members = [], []
    for name, arrays in zip(model.weight_names, opt.state_arrays(model.weights)):
        entry = {"weight": name, "count": len(arrays), "arrays": []}
        for i, a in enumerate(arrays):
            if a is not None:
                f = f"optimizer/{len(members):04d}.npy"
                entry["arrays"].append({"slot": i, "shape": list(a.shape),
                                        "dtype": a.dtype.name, "file": f})
                members.append((f, a))
        slots.append(entry)
    return {"iterations": int(opt.iterations), "slots": slots}, members


def save_model(model: Any, path: str | os.PathLike) -> None:
    """Architecture, compile settings, weights and optimizer state in one file (see the
    module docstring)."""
    entries, arrays = _weights_manifest(model)
    opt_state, opt_members = _optimizer_manifest(model)
    manifest = {"format": FORMAT, "version": VERSION, "model": _model_config(model),
                "compile": _compile_config(model), "weights": entries,
                "optimizer_state": opt_state}
    _write(path, manifest, [(e["file"], a) for e, a in zip(entries, arrays)] + opt_members)


def save_weights(model: Any, path: str | os.PathLike) -> None:
    """Only the weights (and their manifest); ``load_weights`` reads them into a like model."""
    entries, arrays = _weights_manifest(model)
    _write(path, {"format": FORMAT, "version": VERSION, "model": None, "compile": None,
                  "weights": entries}, [(e["file"], a) for e, a in zip(entries, arrays)])


def _read(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The manifest and every weight array, fully read and checked against the manifest."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"no model file at {path!r}")
    try:
        with zipfile.ZipFile(path) as zf:
            try:
                manifest = json.loads(zf.read(_MANIFEST))
            except KeyError:
                raise CheckpointError(f"{path!r} is a zip file but not a graphnet model file "
                                      f"(it has no {_MANIFEST})") from None
            if manifest.get("format") != FORMAT:
                raise CheckpointError(f"{path!r} is not a graphnet model file")
            if manifest.get("version", 0) > VERSION:
                raise CheckpointError(f"{path!r} was written by a newer graphnet (format "
                                      f"version {manifest['version']}; this one reads {VERSION})")
            arrays = {e["key"]: _member(zf, e, path, f"weight {e['key']!r}")
                      for e in manifest["weights"]}
            opt = manifest.get("optimizer_state")
            for w in (opt or {}).get("slots", []):  # Adam's moments... beside their weight
                slots = [None] * w["count"]
                for e in w["arrays"]:
                    slots[e["slot"]] = _member(zf, e, path, f"optimizer slot of {w['weight']!r}")
                w["values"] = slots
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, KeyError, ValueError,
            json.JSONDecodeError) as e:
        raise CheckpointError(f"cannot read the model file {path!r}: it is truncated or "
                              f"corrupt ({type(e).__name__}: {e})") from None
    return manifest, arrays


def _member(zf: zipfile.ZipFile, e: dict[str, Any], path: str, what: str) -> np.ndarray:
    """One ``.npy`` member, checked against its manifest entry."""
    with zf.open(e["file"]) as f:
        a = np.lib.format.read_array(io.BytesIO(f.read()), allow_pickle=False)
    if list(a.shape) != list(e["shape"]) or a.dtype.name != e["dtype"]:
        raise CheckpointError(f"{path!r} is corrupt: {what} holds {a.dtype} "
                              f"{fmt_shape(a.shape)}, its manifest says {e['dtype']} "
                              f"{fmt_shape(tuple(e['shape']))}")
    return a


def _assign(model: Any, arrays: dict[str, np.ndarray], path: str) -> None:
    """Check every key and shape against the model, then assign all weights at once."""
    names, weights = model.weight_names, model.weights
    missing = [n for n in names if n not in arrays]
    extra = [k for k in arrays if k not in set(names)]
    wrong = [f"{n}: model {fmt_shape(w.shape)}, file {fmt_shape(arrays[n].shape)}"
             for n, w in zip(names, weights) if n in arrays and arrays[n].shape != w.shape]
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"missing from the file: {missing}")
        if extra:
            parts.append(f"not in the model: {extra}")
        if wrong:
            parts.append(f"shapes differ: {wrong}")
        raise CheckpointError(f"the weights in {path!r} do not match model {model.name!r}; "
                              + "; ".join(parts) + ". Nothing was loaded.")
    model.set_weights([arrays[n] for n in names])


def load_weights(model: Any, path: str | os.PathLike) -> None:
    """Read weights saved by ``save``/``save_weights`` into ``model`` (all or nothing)."""
    _, arrays = _read(path)
    _assign(model, arrays, os.fspath(path))


def load_model(path: str | os.PathLike, classes: Mapping[str, Any],
               compile: bool = True, distribute: Any = None) -> Any:  # noqa: A002
    """Rebuild the model in a fresh graph, load its weights, and compile it as it was.

    ``classes`` maps the saved class names to the model classes (``training.model`` passes
    them: it sits above this module)."""
    from ..layers.base import LAYERS  # noqa: F401 - the layer registry must be filled
    from . import losses, metrics, optimizers
    manifest, arrays = _read(path)
    spec = manifest.get("model")
    if spec is None:
        raise CheckpointError(f"{os.fspath(path)!r} holds weights only (save_weights); build "
                              "the model and call model.load_weights")
    cls = classes.get(spec.get("class_name"))
    if cls is None:
        raise CheckpointError(f"unknown model class {spec.get('class_name')!r} in {path!r}")
    try:
        model = cls.from_config(spec["config"])
    except CheckpointError:
        raise
    except (GraphError, KeyError, TypeError) as e:
        raise CheckpointError(f"cannot rebuild the model saved in {os.fspath(path)!r}: "
                              f"{type(e).__name__}: {e}") from None
    _assign(model, arrays, os.fspath(path))
    cc = manifest.get("compile")
    if compile and cc:
        loss = [losses.deserialize(s) for s in cc["loss"]]
        model.compile(optimizer=optimizers.deserialize(cc["optimizer"]),
                      loss=loss if cc.get("loss_is_list") else loss[0],
                      metrics=[m if isinstance(m, str) else metrics.deserialize(m)
                               for m in cc["metrics"]],
                      device=cc.get("device", "cpu"), distribute=distribute)
        state = manifest.get("optimizer_state")
        if state:
            _resume(model, state, os.fspath(path))
    return model


def _resume(model: Any, state: dict[str, Any], path: str) -> None:
    """Give the loaded model's optimizer its saved step count and slots, checked first."""
    by_name = {w["weight"]: w["values"] for w in state["slots"]}
    names, weights = model.weight_names, model.weights
    values = [by_name.get(n, []) for n in names]
    for n, w, vals in zip(names, weights, values):
        if any(v is not None and v.shape != w.shape for v in vals):
            raise CheckpointError(f"{path!r}: the optimizer state of {n!r} does not fit its "
                                  f"weight {fmt_shape(w.shape)}")
    model.optimizer.load_state(state["iterations"], weights, values)
