"""The library's one exception base: ``except designer.errors.Error`` catches every failure
mpdesign raises on purpose (bad input, no solution, a failed write), and nothing else. Each
error also subclasses the builtin it is (``ValueError`` for bad input, ``RuntimeError`` for a
step that failed, ``OSError``-like writes keep their own), so code written against those keeps
working. ``solvers`` knows nothing of ``designer``: its ``MissingExtra`` is an ``ImportError``."""

from __future__ import annotations


class Error(Exception):
    """Any error mpdesign raises on purpose."""
