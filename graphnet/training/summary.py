"""``model.summary()``: Keras' table of layers, output shapes and parameter counts."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.tensor import fmt_shape


def _row(cells: list[str], widths: list[int]) -> str:
    return "".join(" " + c.ljust(w - 1) for c, w in zip(cells, widths)).rstrip()


def summarize(model: Any, functional: bool, line_length: int = 80) -> str:
    """The summary text of a built model; a functional one also lists its Inputs and each
    layer's inbound layers."""
    model._require_built()
    frac = [0.40, 0.68, 0.80, 1.0] if functional else [0.45, 0.80, 1.0]
    cuts = [int(line_length * f) for f in frac]
    widths = [b - a for a, b in zip([0, *cuts[:-1]], cuts)]
    head = ["Layer (type)", "Output Shape", "Param #"] + (["Connected to"] if functional else [])
    lines = [f'Model: "{model.name}"', "_" * line_length, _row(head, widths), "=" * line_length]
    rows = []
    if functional:
        for t in model.inputs:
            rows.append([f"{t.name} (Input)", fmt_shape(t.shape), "0", ""])
    for la in model.layers:
        shape = la.output_shape
        shape_s = fmt_shape(shape) if isinstance(shape, tuple) else \
            ", ".join(fmt_shape(s) for s in shape)
        row = [f"{la.name} ({type(la).__name__})", shape_s, f"{la.count_params():,}"]
        if functional:
            srcs = []
            for xs, _ in la.calls:
                for t in xs:
                    srcs.append(t.layer.name if t.layer is not None else t.name)
            row.append(", ".join(dict.fromkeys(srcs)))
        rows.append(row)
    for i, r in enumerate(rows):
        if i:
            lines.append("")
        lines.append(_row(r, widths))
    lines.append("=" * line_length)
    total = model.count_params()
    trainable = int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))
    lines += [f"Total params: {total:,}", f"Trainable params: {trainable:,}",
              f"Non-trainable params: {total - trainable:,}", "_" * line_length]
    return "\n".join(lines)
