"""CUDA kernels (@cuda.jit), the same names as graphnet.kernels.cpu."""
