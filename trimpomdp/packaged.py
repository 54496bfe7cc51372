"""Files shipped inside the package (``trimpomdp/data``): the default routing spec for MATH, its
observation table and points, and a classic example, found through ``importlib.resources`` so that they
are there in a wheel install as in a checkout."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from trimpomdp.errors import TrimError

#: the routing model decode and the budget policies use when none is given
DEFAULT_SPEC = "trim_math.json"

#: routing specs whose observation model was fitted on a packaged PRM's own scores (scripts/fit_judge_obs.sh);
#: decode reads that PRM through its own spec, every other PRM through DEFAULT_SPEC (Qwen2.5-Math-PRM scores)
PRM_SPECS = {"judge:smollm2": "trim_judge_smollm2.json"}


def data_dir() -> Path:
    return Path(str(resources.files("trimpomdp") / "data"))


def packaged_files() -> list[Path]:
    """The shipped data files, sorted by name."""
    d = data_dir()
    return sorted(p for p in d.iterdir() if p.is_file() and not p.name.startswith((".", "_")))


def data_path(name: str) -> Path:
    """The path of the shipped file ``name``; a clear error lists what is shipped otherwise."""
    p = data_dir() / name
    if not p.is_file():
        names = ", ".join(f.name for f in packaged_files())
        raise TrimError(f"no packaged data file {name!r}; shipped: {names}")
    return p


def default_spec_path(prm: str | None = None) -> Path:
    """The spec used when none is given: the one fitted for ``prm`` when it is a packaged PRM with its own
    observation model, else the default."""
    return data_path(PRM_SPECS.get(prm or "", DEFAULT_SPEC))


def prm_calibration(prm: str | None) -> dict | None:
    """What was measured of a packaged PRM on labelled steps (the ``info`` of its spec: AUC, counts, the
    data and commands), or None for any other PRM."""
    import json

    if prm not in PRM_SPECS:
        return None
    try:
        info = json.loads(data_path(PRM_SPECS[prm]).read_text()).get("info")
    except (TrimError, OSError, ValueError):
        return None
    return info if isinstance(info, dict) and "prm_auc" in info else None
