"""Bridge to pomdp-py: wrap a tabular POMDP as pomdp-py models so its planners (POUCT, POMCP) and exact
histogram belief update run on our arrays, e.g. to cross-check our solvers and belief code.

pomdp-py is an optional extra (``pip install trimpomdp[pomdp-py]``) and is imported only when used.
Rewards are our expected ``R[s, a]`` (rewards given per (s, a, s', o) were folded by the readers), so
``RewardModel.sample`` ignores the next state.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from trimpomdp.errors import TrimError
from trimpomdp.pomdp.model import POMDP


def _pomdp_py():
    try:
        import pomdp_py
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise TrimError("pomdp-py is not installed: pip install 'trimpomdp[pomdp-py]' "
                        f"(or pip install pomdp-py) ({exc})") from None
    return pomdp_py


@lru_cache(maxsize=1)
def _classes():
    """pomdp-py subclasses, created on first use so that importing this module never needs pomdp-py."""
    pp = _pomdp_py()

    class _Named:
        """A state/action/observation: equal and hashed by index, printed by name."""

        def __init__(self, index: int, name: str):
            self.index, self.name = int(index), str(name)

        def __hash__(self):
            return hash((type(self).__name__, self.index))

        def __eq__(self, other):
            return type(other) is type(self) and other.index == self.index

        def __str__(self):
            return self.name

        def __repr__(self):
            return f"{type(self).__name__}({self.name!r})"

        # immutable: POMCP deep-copies particles, which the Cython base classes cannot pickle
        def __copy__(self):
            return self

        def __deepcopy__(self, memo):
            return self

        def __reduce__(self):
            return (type(self), (self.index, self.name))

    class TabState(_Named, pp.State):
        pass

    class TabAction(_Named, pp.Action):
        pass

    class TabObservation(_Named, pp.Observation):
        pass

    def draw(rng: random.Random, mat, row: int) -> int:
        lo, hi = mat.indptr[row], mat.indptr[row + 1]
        cols, probs = mat.indices[lo:hi], mat.data[lo:hi]
        u = rng.random() * probs.sum()
        k = int(np.searchsorted(np.cumsum(probs), u, side="right"))
        return int(cols[min(k, cols.size - 1)])

    class TransitionModel(pp.TransitionModel):
        def __init__(self, model: POMDP, states, rng: random.Random):
            self.model, self.states, self.rng = model, states, rng

        def probability(self, next_state, state, action):
            return float(self.model.T[action.index][state.index, next_state.index])

        def sample(self, state, action):
            return self.states[draw(self.rng, self.model.T[action.index], state.index)]

        def get_all_states(self):
            return list(self.states)

    class ObservationModel(pp.ObservationModel):
        def __init__(self, model: POMDP, observations, rng: random.Random):
            self.model, self.observations, self.rng = model, observations, rng

        def probability(self, observation, next_state, action):
            return float(self.model.O[action.index][next_state.index, observation.index])

        def sample(self, next_state, action):
            return self.observations[draw(self.rng, self.model.O[action.index], next_state.index)]

        def get_all_observations(self):
            return list(self.observations)

    class RewardModel(pp.RewardModel):
        def __init__(self, model: POMDP):
            self.model = model

        def sample(self, state, action, next_state):
            return float(self.model.R[state.index, action.index])

    class PolicyModel(pp.RolloutPolicy):
        """Uniformly random actions: the default rollout policy of POUCT/POMCP."""

        def __init__(self, actions, rng: random.Random):
            self.actions, self.rng = actions, rng

        def sample(self, state):
            return self.rng.choice(self.actions)

        def rollout(self, state, history=None):
            return self.sample(state)

        def get_all_actions(self, state=None, history=None):
            return list(self.actions)

    return dict(State=TabState, Action=TabAction, Observation=TabObservation, TransitionModel=TransitionModel,
                ObservationModel=ObservationModel, RewardModel=RewardModel, PolicyModel=PolicyModel)


@dataclass
class PomdpPyProblem:
    """A model as pomdp-py objects: the agent, an environment in a hidden true state, and the objects
    standing for each state/action/observation index (``states[i].index == i``)."""

    agent: object
    env: object
    states: tuple
    actions: tuple
    observations: tuple

    def belief(self) -> np.ndarray:
        """The agent's current belief as an array over state indices (particles are counted)."""
        return belief_from_histogram(self.agent.belief, len(self.states))


def histogram(states, belief) -> object:
    """A ``pomdp_py.Histogram`` over the state objects (zero-probability states are kept)."""
    pp = _pomdp_py()
    return pp.Histogram({s: float(p) for s, p in zip(states, np.asarray(belief, dtype=np.float64))})


def belief_from_histogram(hist, n_states: int) -> np.ndarray:
    """The array form of a pomdp-py Histogram (or Particles) whose states carry ``.index`` (as ours do)."""
    pp = _pomdp_py()
    b = np.zeros(n_states)
    if isinstance(hist, pp.Particles):
        for s in hist.particles:
            b[s.index] += 1.0
        return b / max(b.sum(), 1.0)
    for s in hist:
        b[s.index] = hist[s]
    return b


def particles(states, belief, n: int, rng: random.Random):
    """A ``pomdp_py.Particles`` belief of ``n`` draws from ``belief`` (what POMCP needs)."""
    pp = _pomdp_py()
    b = np.asarray(belief, dtype=np.float64)
    idx = rng.choices(range(len(states)), weights=b.tolist(), k=n)
    return pp.Particles([states[i] for i in idx])


def to_pomdp_py_problem(model: POMDP, belief=None, init_state=None, seed: int | None = None,
                        n_particles: int | None = None) -> PomdpPyProblem:
    """Agent + environment for ``model``; ``init_state`` (index or name) defaults to a draw from the belief.

    The agent's belief is an exact ``Histogram`` (for POUCT and ``update_histogram_belief``), or, when
    ``n_particles`` is given, ``Particles`` (for POMCP).
    """
    pp = _pomdp_py()
    C = _classes()
    rng = random.Random(seed)
    states = tuple(C["State"](i, n) for i, n in enumerate(model.states))
    actions = tuple(C["Action"](i, n) for i, n in enumerate(model.actions))
    observations = tuple(C["Observation"](i, n) for i, n in enumerate(model.observations))
    b = model.initial_belief if belief is None else np.asarray(belief, dtype=np.float64)
    tm = C["TransitionModel"](model, states, rng)
    om = C["ObservationModel"](model, observations, rng)
    rm = C["RewardModel"](model)
    pm = C["PolicyModel"](actions, rng)
    init = histogram(states, b) if n_particles is None else particles(states, b, n_particles, rng)
    agent = pp.Agent(init, pm, tm, om, rm)
    if init_state is None:
        s0 = int(np.searchsorted(np.cumsum(b), rng.random() * b.sum(), side="right"))
        s0 = min(s0, len(states) - 1)
    else:
        s0 = model.index("state", init_state)
    env = pp.Environment(states[s0], tm, rm)
    return PomdpPyProblem(agent, env, states, actions, observations)


def to_pomdp_py(model: POMDP, belief=None, seed: int | None = None, n_particles: int | None = None):
    """A ``pomdp_py.Agent`` backed by ``model``'s arrays (histogram or particle belief, random rollouts)."""
    return to_pomdp_py_problem(model, belief=belief, seed=seed, n_particles=n_particles).agent
