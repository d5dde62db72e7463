"""Numba kernels, one module per node family: ``cpu`` (@njit) and ``cuda`` (@cuda.jit).

Installed as ``graphnet.kernels``. Kernels take and return arrays; they know nothing of graphs.
"""
