"""Scripts that tests/training/test_distribute.py runs under ``mpiexec -n 2``."""
