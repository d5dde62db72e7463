"""The engine's ground floor: the graph and its tensors, dtypes, errors, initializers, the
backends and the executor (``Program``). It imports nothing above it: ops, layers and
training build on it."""
