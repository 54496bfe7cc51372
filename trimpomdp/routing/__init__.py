"""TRIM routing: the model spec, the structured POMDP solve per budget, policies, the belief filter,
the routing simulator and cost-accuracy metrics.

Decode-time API (stable)::

    tm = TrimModel.load("data/trim_math.json")
    policy = load_policy("pomdp:policy.npz")        # or solve_trim(tm, lam=0.15); .trim_model is embedded
    filt = BeliefFilter(policy.trim_model)
    policy.reset()                                  # once per question (budget caps)
    prior, post = filt.step(None, None, (1.0, s1))  # step 1; later filt.step(post_prev, action_prev, obs)
    d = policy.decide(post, step, n_tokens, score=s_t)   # Decision(action, q_keep, q_regenerate)
"""

from trimpomdp.routing.budgets import Budget, Cap, parse_budget, parse_sweep, solve_budget
from trimpomdp.routing.filter import BeliefFilter
from trimpomdp.routing.policies import (
    Decision,
    PomdpPolicy,
    RoutingPolicy,
    StrongPolicy,
    ThresholdPolicy,
    WeakPolicy,
    load_policy,
)
from trimpomdp.routing.solver import solve_trim
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
