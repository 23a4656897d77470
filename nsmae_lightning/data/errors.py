"""Errors raised for bad input data: they always name the file (or token) and the problem."""

from __future__ import annotations

from pathlib import Path


class DataError(RuntimeError):
    """A dataset file or table is missing, truncated or inconsistent.

    Args:
        path: the offending file, folder or table token.
        problem: what is wrong with it, in words a user can act on.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
