"""Lecture demos: python -m demos <name>."""
