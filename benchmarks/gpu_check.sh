#!/usr/bin/env bash
# The one GPU check: install graphnet, run tests/cuda on the real GPU, then benchmarks/gpu.py.
# Usage (repository root, on the GPU machine):  bash benchmarks/gpu_check.sh
# Logs go to "$OUT" when set (else ./gpu_check_out). Every step runs even if one before it
# failed; the summary at the end gives each step's exit status. Budget: about 10 minutes
# (GPU_NOPOOL=1 adds a run without the caching pool).
set -x
cd "$(dirname "$0")/.." || exit 1
OUT="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
unset NUMBA_ENABLE_CUDASIM

# numba-cuda releases before NumPy 2.5 call np.row_stack, which NumPy 2.5 removed; a
# sitecustomize restores the alias (an exact synonym of np.vstack) for this run only.
if ! "$PY" -c "import numpy; numpy.row_stack" 2>/dev/null; then
    COMPAT="$(mktemp -d)"
    echo "import numpy; numpy.row_stack = numpy.vstack" > "$COMPAT/sitecustomize.py"
    export PYTHONPATH="$COMPAT${PYTHONPATH:+:$PYTHONPATH}"
fi

# 0. what machine is this
{ nvidia-smi; "$PY" -c "import sys, numba, numpy; print(sys.version); print('numba', numba.__version__, 'numpy', numpy.__version__)"
  "$PY" -c "import numba_cuda; print('numba-cuda', numba_cuda.__version__)"
  "$PY" -c "import torch; print('torch', torch.__version__, torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
  "$PY" -c "from numba import cuda; print('numba sees GPU:', cuda.is_available()); cuda.detect()"
} > "$OUT/env.log" 2>&1
cat "$OUT/env.log"

# 1. install (editable, offline); fallback: a copy of the package tree on PYTHONPATH
"$PY" -m pip install -q --no-deps --no-build-isolation -e . > "$OUT/install.log" 2>&1
rc_install=$?
if ! "$PY" -c "import graphnet.kernels.cuda" >> "$OUT/install.log" 2>&1; then
    # graphnet.kernels / graphnet.visualize live in top-level folders (setuptools package-dir),
    # so without an install they are assembled into a temporary copy of the package.
    SHIM="$(mktemp -d)"
    cp -r graphnet "$SHIM/graphnet" && cp -r kernels "$SHIM/graphnet/kernels"
    [ -d visualize ] && cp -r visualize "$SHIM/graphnet/visualize"
    export PYTHONPATH="$SHIM:$PWD${PYTHONPATH:+:$PYTHONPATH}"
    echo "pip install failed (rc=$rc_install); using PYTHONPATH=$PYTHONPATH" | tee -a "$OUT/install.log"
fi
tail -5 "$OUT/install.log"

# 2. the CUDA tests on the real GPU (no simulator), 300 s at most; NVVM compiles on the CPU,
# so several pytest workers share the GPU when pytest-xdist is there
XDIST=$("$PY" -c "import xdist" 2>/dev/null && echo "-n 8")
GRAPHNET_REAL_GPU=1 timeout 300 "$PY" -m pytest -q -p no:cacheprovider $XDIST tests/cuda \
    tests/test_model.py::test_fit_on_cuda_matches_cpu \
    -W ignore::DeprecationWarning > "$OUT/tests_cuda.log" 2>&1
rc_tests=$?
tail -30 "$OUT/tests_cuda.log"

# 3. the benchmark beside PyTorch (with the scoreboard's workloads through model.fit) and
# the on-GPU parity check, 300 s at most
timeout 300 "$PY" benchmarks/gpu.py --json "$OUT/gpu_bench.json" > "$OUT/gpu_bench.log" 2>&1
rc_bench=$?
cat "$OUT/gpu_bench.log" | tail -40

# 4. optionally, the same benchmark with Numba's own allocator instead of graphnet's pool
rc_nopool=skipped
if [ "${GPU_NOPOOL:-0}" = 1 ]; then
    GRAPHNET_CUDA_POOL=0 timeout 100 "$PY" benchmarks/gpu.py > "$OUT/gpu_bench_nopool.log" 2>&1
    rc_nopool=$?
    grep -A 9 "^workload" "$OUT/gpu_bench_nopool.log" | sed 's/^/[no pool] /'
fi

set +x
echo "== summary: install=$rc_install tests_cuda=$rc_tests gpu_bench=$rc_bench nopool=$rc_nopool (logs in $OUT)" \
    | tee "$OUT/summary.txt"
