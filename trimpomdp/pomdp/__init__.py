"""The tabular POMDP core: model container, belief updates, file readers and writers."""
from trimpomdp.pomdp.belief import update, update_batch
from trimpomdp.pomdp.model import POMDP

__all__ = ["POMDP", "update", "update_batch"]
