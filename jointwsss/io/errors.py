"""One error type for bad input files: it always names the file and the problem."""

from __future__ import annotations

import os


class DataFormatError(ValueError):
    """A file does not have the format we expect.

    The message is ``"<path>: <problem>"`` followed by ``" -- <fix>"`` when a fix is known, so
    a user reading a Snakemake log sees which file to look at and what to do about it.
    """

    def __init__(self, path: str | os.PathLike, problem: str, fix: str | None = None):
        self.path = os.fspath(path)
        self.problem = problem
        self.fix = fix
        msg = f"{self.path}: {problem}"
        if fix:
            msg += f" -- {fix}"
        super().__init__(msg)
