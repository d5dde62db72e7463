"""Numba kernels, one module per node family: ``cpu`` (@njit) and ``cuda`` (@cuda.jit).

Installed as ``graphnet.kernels``. Kernels take and return arrays; they know nothing of graphs.
"""

from __future__ import annotations

import importlib
import pkgutil


def export_families(namespace: dict, skip: tuple = ()) -> list[str]:
    """Import every public module of a backend package (one per node family) and copy the
    names in its ``__all__`` into the package, so that an op finds kernel ``conv2d`` as
    ``ctx.be.conv2d`` and a new family needs no registration. Returns the names."""
    names: list[str] = []
    for m in sorted(pkgutil.iter_modules(namespace["__path__"]), key=lambda m: m.name):
        if m.name.startswith("_") or m.name in skip:
            continue
        mod = importlib.import_module(f"{namespace['__name__']}.{m.name}")
        for n in getattr(mod, "__all__", ()):
            namespace[n] = getattr(mod, n)
            names.append(n)
    return names
