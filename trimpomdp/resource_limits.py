"""Limits on what one input may make trimpomdp allocate or compute, checked before the work starts.

A size declared in a file or an option (``states: 100000000``, ``--bin-size 1e-4``, ``--episodes 1e9``)
must not end in a ``MemoryError``, a numpy allocation traceback or hours of computing: it is compared with
a limit first and refused with a one-line ``TrimError`` that names the estimate, the limit and how to
raise it.

- Model files (``.pomdp``, ``.pomdpx``): the memory the reader will need, estimated from the declared sizes
  and what the entries really cover (sparse rows, factored tables), may not exceed
  ``TRIMPOMDP_MODEL_MEMORY_MB`` (default 4096 MB); the readers also take ``max_memory_mb=``.
- Model files: at most ``MAX_ACTIONS`` actions (the model holds one sparse T and one sparse O matrix per
  action, built and checked one by one, about 0.2 ms an action: ``actions: 1000000`` would take minutes).
- Observation grids: at most ``MAX_BINS`` bins (the exact integration costs copies x bins and the routing
  POMDP has one observation per bin).
- Routing simulation: at most ``MAX_EPISODES`` episodes per policy (about 2 microseconds each; the
  standard error at that size is far below anything the metrics resolve), simulated in chunks so that
  memory does not grow with the count.
"""
from __future__ import annotations

import os

from trimpomdp.errors import FormatError, TrimError

#: environment variable that overrides the model-file memory limit (megabytes)
MODEL_MEMORY_ENV = "TRIMPOMDP_MODEL_MEMORY_MB"
DEFAULT_MODEL_MEMORY_MB = 4096.0
#: most actions a model file may declare
MAX_ACTIONS = 10_000
#: most bins an observation grid may have (100 x 100 in 2-D, 10,000 in 1-D)
MAX_BINS = 10_000
#: most episodes one routing simulation may run
MAX_EPISODES = 100_000_000

_MB = 1024.0 * 1024.0


def model_memory_limit_mb(max_memory_mb: float | None = None) -> float:
    """The limit in MB: ``max_memory_mb`` if given, else ``$TRIMPOMDP_MODEL_MEMORY_MB``, else 4096."""
    if max_memory_mb is not None:
        value, where = max_memory_mb, "max_memory_mb"
    else:
        env = os.environ.get(MODEL_MEMORY_ENV, "").strip()
        if not env:
            return DEFAULT_MODEL_MEMORY_MB
        value, where = env, MODEL_MEMORY_ENV
    try:
        mb = float(value)
    except (TypeError, ValueError):
        raise TrimError(f"{where} must be a number of megabytes, got {value!r}") from None
    if not mb > 0 or mb != mb or mb == float("inf"):
        raise TrimError(f"{where} must be a positive number of megabytes, got {value!r}")
    return mb


class MemoryBudget:
    """Refuses a model whose estimated memory exceeds the limit, before the memory is allocated."""

    def __init__(self, path: str, max_memory_mb: float | None = None):
        self.path = path
        self.limit_mb = model_memory_limit_mb(max_memory_mb)

    def check(self, nbytes: float, what: str, line=None) -> None:
        """Raise a FormatError naming ``what`` and the estimate when ``nbytes`` exceeds the limit; ``line``
        may be a callable, evaluated only then (finding a line can cost a pass over the file)."""
        mb = float(nbytes) / _MB
        if mb > self.limit_mb:
            line = line() if callable(line) else line
            raise FormatError(
                f"{what} would need about {_fmt_mb(mb)} of memory, over the {_fmt_mb(self.limit_mb)} limit on "
                f"model files (set {MODEL_MEMORY_ENV}=<MB> or pass max_memory_mb= to raise it)", self.path, line)


def _fmt_mb(mb: float) -> str:
    if mb >= 1024 * 1024:
        return f"{mb / (1024 * 1024):,.0f} TB"
    if mb >= 10 * 1024:
        return f"{mb / 1024:,.0f} GB"
    return f"{mb:,.0f} MB"


def check_actions(n: int, path: str, line=None) -> None:
    """Refuse a model file declaring more than ``MAX_ACTIONS`` actions (reading it would take minutes)."""
    if n > MAX_ACTIONS:
        raise FormatError(f"{n:,} actions are over the limit of {MAX_ACTIONS:,} (the model holds one sparse "
                          "T and O matrix per action, built and checked one by one)", path, line)


def check_episodes(episodes: int, what: str = "episodes") -> int:
    """``episodes`` as an int in 1..MAX_EPISODES, else a TrimError naming the limit."""
    try:
        n = int(episodes)
    except (TypeError, ValueError):
        raise TrimError(f"{what} must be a whole number, got {episodes!r}") from None
    if n < 1:
        raise TrimError(f"{what} must be at least 1, got {n}")
    if n > MAX_EPISODES:
        raise TrimError(f"{what} = {n:,} is over the limit of {MAX_EPISODES:,} per policy (about 2 us per "
                        "episode; the standard error there is already below 1e-4)")
    return n
