"""Export floor: graphs built from core and ops, written in other formats. ``onnx``:
``gn.onnx.export(outputs, path, inputs=[...])`` and ``Model.export(path, format="onnx")``.
It reads graphs only (core, ops), never layers or training."""

from . import onnx

__all__ = ["onnx"]
