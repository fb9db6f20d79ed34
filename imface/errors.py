"""User-facing errors: one line that names the file and the problem."""
from __future__ import annotations

from os import PathLike


class ImfaceError(Exception):
    """An error caused by the user's input, reported as ``<path>: <problem>``.

    The CLI prints ``str(err)`` on one line and exits non-zero; batch jobs record it
    in their summary and go on with the other inputs.
    """

    def __init__(self, path: str | PathLike | None, problem: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = " ".join(str(problem).split())  # always one line
        super().__init__(self.problem if self.path is None else f"{self.path}: {self.problem}")
