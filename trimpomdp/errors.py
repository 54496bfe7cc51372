"""Error types: every user-facing failure is a ``TrimError`` whose message is one line.

The CLI prints ``Error: <message>`` and exits with status 2 for these, so messages must name the file,
line or field at fault and say what was expected.
"""
from __future__ import annotations


class TrimError(ValueError):
    """Base class of all errors trimpomdp reports to users."""


class ModelError(TrimError):
    """A POMDP (or other model) is inconsistent: bad shape, probabilities, rewards or discount."""


class FormatError(TrimError):
    """A file could not be parsed; carries the file name and (1-based) line when known."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        self.path, self.line, self.detail = path, line, message
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        elif line is not None:
            where = f"line {line}: "
        super().__init__(where + message)


class BeliefError(TrimError):
    """A belief update is impossible, e.g. the observation has probability zero under the belief."""
