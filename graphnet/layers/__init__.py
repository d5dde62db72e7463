"""Keras-style layers: each builds a subgraph under its own name scope and owns Parameters."""
