"""Alpha-vector policies of tabular POMDPs, kept apart from the solvers that make them (as POMDPs.jl keeps
policies apart): the policy itself and its ``.npz`` file (``alpha``), SARSOP's ``.policy`` XML (``xml``),
and evaluation by simulation or exactly (``evaluation``)."""
from trimpomdp.policies.alpha import AlphaVectorPolicy
from trimpomdp.policies.files import load_alpha_policy, save_alpha_policy

__all__ = ["AlphaVectorPolicy", "load_alpha_policy", "save_alpha_policy"]
