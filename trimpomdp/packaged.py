"""Files shipped inside the package (``trimpomdp/data``): the default routing spec for MATH, its
observation table and points, and a classic example, found through ``importlib.resources`` so that they
are there in a wheel install as in a checkout."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from trimpomdp.errors import TrimError

#: the routing model decode and the budget policies use when none is given
DEFAULT_SPEC = "trim_math.json"


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


def default_spec_path() -> Path:
    return data_path(DEFAULT_SPEC)
