"""``python -m graphnet.doctor`` (or ``make doctor``): what this machine offers graphnet.

One line per piece: Python, NumPy, Numba and its threading layer, the BLAS NumPy calls
(threadpoolctl), Graphviz's ``dot`` (the drawings), CUDA (a GPU, or the simulator), Numba's
cache directory, and the optional packages. Nothing here is required to be present: a check
that cannot answer says so on its line, and the command always exits 0.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable

__all__ = ["OPTIONAL", "checks", "main", "report"]

# optional packages: what each one adds
OPTIONAL = {
    "torch": "benchmarks beside PyTorch, reference values in tests",
    "onnx": "ONNX export (the onnx extra)",
    "onnxruntime": "running exported ONNX models",
    "mpi4py": "several processes",
    "keras": "comparisons with Keras",
    "numba-cuda": "the CUDA backend (the cuda extra)",
    "cupy-cuda13x": "cuBLAS for the CUDA backend's products (the cuda extra)",
    "matplotlib": "the demos' plots",
    "scikit-learn": "the demos' bundled data sets",
    "tqdm": "the progress bar",
}

DOT_HINT = ("missing: the drawings are written as .gv sources only; install Graphviz "
            "(apt-get install graphviz, brew install graphviz or conda install -c conda-forge "
            "graphviz)")


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _loads(module: str) -> bool:
    """Whether a module imports (a threading layer's library may be absent or too old)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            importlib.import_module(module)
            return True
        except Exception:  # noqa: BLE001 - ImportError, or a library that fails to load
            return False


def python() -> str:
    return f"{sys.version.split()[0]} ({sys.executable})"


def graphnet() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    return f"{_version('graphnet') or 'not installed (run from the checkout)'} ({here})"


def numpy() -> str:
    import numpy as np
    return np.__version__


def numba() -> str:
    import numba as nb
    from numba.core import config

    # graphnet chooses workqueue at import (kernels/jit.py) unless the user set a layer
    import graphnet.kernels.jit  # noqa: F401

    chosen = config.THREADING_LAYER
    why = ("NUMBA_THREADING_LAYER" if "NUMBA_THREADING_LAYER" in os.environ
           else "graphnet's choice")
    layers = [n for n, m in (("tbb", "tbbpool"), ("omp", "omppool"),
                             ("workqueue", "workqueue")) if _loads(f"numba.np.ufunc.{m}")]
    jit = "off (NUMBA_DISABLE_JIT=1)" if config.DISABLE_JIT else "on"
    return (f"{nb.__version__}; threading layer {chosen} ({why}), available: "
            f"{', '.join(layers) or 'none found'}; jit {jit}")


def blas() -> str:
    import numpy as np  # noqa: F401 - loads the BLAS that threadpoolctl then finds
    from threadpoolctl import threadpool_info

    libs = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    if not libs:
        return "none found by threadpoolctl"
    return "; ".join(f"{i.get('internal_api')} {i.get('version') or ''}".rstrip()
                     + f", {i.get('num_threads')} threads ({os.path.basename(i['filepath'])})"
                     for i in libs)


def graphviz() -> str:
    dot = shutil.which("dot")
    if dot is None:
        return DOT_HINT
    try:
        out = subprocess.run([dot, "-V"], capture_output=True, text=True, timeout=20)
        text = (out.stderr or out.stdout).strip().splitlines()
        version = text[0] if text else f"no version (exit {out.returncode})"
    except (OSError, subprocess.SubprocessError) as e:
        version = f"present but `dot -V` failed ({e})"
    return f"{version} ({dot})"


def cuda() -> str:
    sim = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    pkg = _version("numba-cuda")
    from numba import cuda as nc

    if sim:
        return "the simulator (NUMBA_ENABLE_CUDASIM=1): device='cuda' runs as Python"
    if not nc.is_available():
        tail = f"numba-cuda {pkg}" if pkg else "numba-cuda not installed"
        return (f"no GPU ({tail}); tests run the CUDA kernels under NUMBA_ENABLE_CUDASIM=1")
    names = []
    for d in nc.list_devices():
        name = d.name.decode() if isinstance(d.name, bytes) else str(d.name)
        names.append(f"{name} (compute {'.'.join(map(str, d.compute_capability))})")
    from graphnet.kernels.cuda import cublas

    gemm = "cuBLAS through CuPy" if cublas.library() is not None else \
        "graphnet's own kernel (CuPy with cuBLAS not found)"
    return f"{', '.join(names) or 'available'}; numba-cuda {pkg or '(bundled)'}; GEMM: {gemm}"


def numba_cache() -> str:
    from numba.core import config

    where = config.CACHE_DIR or os.environ.get("NUMBA_CACHE_DIR", "")
    if where:
        folder, how = where, "NUMBA_CACHE_DIR"
    else:  # beside the kernels' sources, as __pycache__
        import graphnet.kernels as k
        folder, how = os.path.join(os.path.dirname(k.__file__), "cpu", "__pycache__"), \
            "beside the kernels"
    state = ("writable" if os.access(folder if os.path.isdir(folder) else
                                     os.path.dirname(folder), os.W_OK) else "not writable: "
             "every process compiles again")
    n = len([f for f in os.listdir(folder) if f.endswith(".nbi")]) if os.path.isdir(folder) \
        else 0
    return f"{folder} ({how}; {state}; {n} cached kernel indexes)"


def optional() -> str:
    have = [f"{name} {v}" for name in OPTIONAL if (v := _version(name))]
    missing = [name for name in OPTIONAL if not _version(name)]
    return (", ".join(have) or "none") + (f"; not installed: {', '.join(missing)}"
                                           if missing else "")


def checks() -> list[tuple[str, Callable[[], str]]]:
    """The checks in the order they are printed: (label, function returning its line)."""
    return [("Python", python), ("graphnet", graphnet), ("NumPy", numpy), ("Numba", numba),
            ("BLAS", blas), ("Graphviz dot", graphviz), ("CUDA", cuda),
            ("Numba cache", numba_cache), ("optional", optional)]


def report() -> list[str]:
    """One line per check; a check that fails says why instead of raising."""
    lines = []
    for label, fn in checks():
        try:
            text = fn()
        except ImportError as e:
            text = f"missing ({e})"
        except Exception as e:  # noqa: BLE001 - the doctor reports, it never crashes
            text = f"could not check ({type(e).__name__}: {e})"
        lines.append(f"{label + ':':<14}{text}")
    return lines


def main(argv: list[str] | None = None) -> int:
    print("graphnet doctor: what this machine has")
    for line in report():
        print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
