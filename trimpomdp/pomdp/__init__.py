"""The tabular POMDP core: model container, belief updates, file readers and writers."""
from trimpomdp.pomdp.belief import update, update_batch
from trimpomdp.pomdp.cassandra import read_pomdp, write_pomdp
from trimpomdp.pomdp.io import load_model, save_model
from trimpomdp.pomdp.model import POMDP
from trimpomdp.pomdp.momdp import MOMDP


def read_pomdpx(path, validate: bool = True, momdp: bool = False):
    """Read a SARSOP ``.pomdpx`` file (imported lazily: XML parsing is not needed by most users); with
    ``momdp`` a ``MOMDP`` that keeps the fully observed variables factored."""
    from trimpomdp.pomdp.pomdpx import read_pomdpx as _read

    return _read(path, validate, momdp=momdp)


__all__ = ["POMDP", "MOMDP", "update", "update_batch", "load_model", "save_model", "read_pomdp", "write_pomdp",
           "read_pomdpx"]
