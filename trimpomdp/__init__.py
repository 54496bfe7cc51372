"""trimpomdp: route single LLM reasoning steps between a cheap and a strong model, planned as a POMDP."""
from trimpomdp.errors import BeliefError, FormatError, ModelError, TrimError

__version__ = "0.1.0"
__all__ = ["TrimError", "FormatError", "ModelError", "BeliefError", "__version__"]
