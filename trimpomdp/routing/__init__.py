"""TRIM routing: the model spec, the structured POMDP solve per budget, policies, the belief filter,
the routing simulator and cost-accuracy metrics.

Decode-time API (stable)::

    tm = TrimModel.load("data/trim_math.json")
    policy = load_policy("pomdp:policy.npz")        # or solve_trim(tm, lam=0.15); .trim_model is embedded
    filt = BeliefFilter(policy.trim_model)
    state = policy.start()                          # once per question (the budget left under a cap)
    prior, post = filt.step(None, None, (1.0, s1))  # step 1; later filt.step(post_prev, action_prev, obs)
    d, state = policy.act(state, StepObservation(step, n_tokens, s_t, belief=post))
    # d: Decision(action, q_keep, q_regenerate); decode.episode.Episode does this bookkeeping per problem
"""

from trimpomdp.routing.budgets import Budget, Cap, parse_budget, parse_sweep
from trimpomdp.routing.filter import BeliefFilter
from trimpomdp.routing.policies import (
    Decision,
    PomdpPolicy,
    RoutingPolicy,
    StrongPolicy,
    ThresholdPolicy,
    WeakPolicy,
)
from trimpomdp.routing.registry import load_policy
from trimpomdp.routing.solver import solve_budget, solve_trim
from trimpomdp.routing.spec import TrimModel

__all__ = [
    "TrimModel",
    "BeliefFilter",
    "Decision",
    "RoutingPolicy",
    "PomdpPolicy",
    "ThresholdPolicy",
    "WeakPolicy",
    "StrongPolicy",
    "load_policy",
    "solve_trim",
    "solve_budget",
    "Budget",
    "Cap",
    "parse_budget",
    "parse_sweep",
]
