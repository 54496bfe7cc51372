"""One entry point for model files: ``load_model``/``save_model`` pick the format from the suffix."""
from __future__ import annotations

from pathlib import Path

from trimpomdp.errors import FormatError
from trimpomdp.pomdp.model import POMDP

#: suffix (lower case) -> format name
FORMATS = {".pomdp": "cassandra", ".pomdpx": "pomdpx"}


def _format_of(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise FormatError(f"unknown model file type {path.suffix or '(none)'!r}: expected "
                          + " or ".join(sorted(FORMATS)), str(path))
    return fmt


def load_model(path, validate: bool = True, max_memory_mb: float | None = None, momdp: bool = False):
    """Read a ``.pomdp`` (Cassandra) or ``.pomdpx`` (SARSOP XML) file into a validated POMDP.

    With ``momdp`` the result is a ``MOMDP``: a ``.pomdpx`` file's ``fullyObs`` variables stay factored
    (``pomdpx.read_pomdpx``), a ``.pomdp`` file is the MOMDP with one visible value.

    Rows of T and O are renormalised exactly after passing validation (files print rounded numbers);
    ``validate=False`` returns the model as written, for tools that report problems instead of failing.
    A model estimated to need more than ``max_memory_mb`` (default ``$TRIMPOMDP_MODEL_MEMORY_MB`` or
    4096) is refused before it is built.
    """
    path = Path(path)
    fmt = _format_of(path)
    if not path.is_file():
        raise FormatError("file not found", str(path))
    if fmt == "cassandra":
        from trimpomdp.pomdp.cassandra import read_pomdp

        model = read_pomdp(path, validate, max_memory_mb)
        if not momdp:
            return model
        from trimpomdp.pomdp.momdp import MOMDP

        return MOMDP.from_pomdp(model)
    from trimpomdp.pomdp.pomdpx import read_pomdpx

    return read_pomdpx(path, validate, max_memory_mb, momdp=momdp)


def save_model(model: POMDP, path) -> Path:
    """Write ``model``; only the Cassandra ``.pomdp`` format is written."""
    path = Path(path)
    if _format_of(path) != "cassandra":
        raise FormatError("only .pomdp files can be written", str(path))
    from trimpomdp.pomdp.cassandra import write_pomdp

    return write_pomdp(model, path)


def describe(path) -> dict:
    """What is in a model file and whether it can be solved, as a JSON-ready dict (``trimpomdp info``).

    The file is read without validation so that an invalid model is described and its problems listed
    rather than rejected at the first one; ``verdict`` is 'valid', 'invalid' or 'unbounded' (well-formed,
    discount 1, value not certified finite).
    """
    import numpy as np

    mm = load_model(path, validate=False, momdp=True)
    m = mm.flat
    problems = m.validation_problems()
    # whether a finite value is certified only means something for a well-formed model
    unbounded = None if problems else m.value_problem()
    b = m.initial_belief
    return {
        "file": str(path),
        "name": m.name,
        "states": m.n_states,
        "actions": m.n_actions,
        "observations": m.n_observations,
        "visible": mm.n_visible,
        "hidden": mm.n_hidden,
        "discount": m.discount,
        "nnz": m.nnz(),
        "sparsity": m.sparsity(),
        "reward_min": float(m.R.min()),
        "reward_max": float(m.R.max()),
        "initial_support": int(np.count_nonzero(b > 0)) if b.ndim == 1 else None,
        "valid": not problems,
        "problems": problems,
        "solvable": not problems and unbounded is None,
        "unbounded": unbounded,
        "verdict": "invalid" if problems else "unbounded" if unbounded else "valid",
    }
