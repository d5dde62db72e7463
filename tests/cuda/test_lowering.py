"""Every CUDA kernel type-checks and lowers with Numba's real CUDA compiler (no GPU needed).

The simulator runs kernels as Python and cannot see typing errors or float64 promotion;
benchmarks/cuda_lowering.py compiles each launch of every family's parity tests to LLVM IR instead.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.cuda
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_every_kernel_lowers_for_the_gpu():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    out = subprocess.run([sys.executable, "-W", "ignore",
                          os.path.join(ROOT, "benchmarks", "cuda_lowering.py")],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    report = out.stdout + out.stderr[-3000:]
    assert out.returncode == 0, report
    assert "; 0 failed" in out.stdout, report
    lowered = int(out.stdout.split("lowered ")[1].split()[0])
    assert lowered >= 80, report  # every family's kernels, not just the first ones
