"""Graphviz drawings of graphs and gradients, and matplotlib plots."""
