"""The contracts between trimpomdp's parts, as ``typing.Protocol`` classes.

Model, solver, policy and belief updater are kept apart (as POMDPs.jl keeps them): the decode loop, the
routing simulator, training environments and evaluation talk to these protocols, never to concrete
classes, so a SARSOP policy, a learned router, a threshold rule or a remote PRM can be dropped in.

Routing policies carry their per-question state explicitly: ``state = policy.start()`` for a new question,
then ``decision, state = policy.act(state, observation)`` per step. Nothing is hidden in the policy object,
so one policy serves many questions at once (batched decoding, vectorised simulation) without copies.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from trimpomdp.errors import TrimError

#: the two routing actions, in the index order the kernels use (0 keep, 1 regenerate)
ACTIONS = ("keep", "regenerate")


def action_name(action) -> str:
    """'keep'/'regenerate' from a name or an index 0/1 (one spelling everywhere downstream)."""
    a = {0: "keep", 1: "regenerate"}.get(action, action) if not isinstance(action, bool) else action
    if a not in ACTIONS:
        raise TrimError(f"unknown routing action {action!r}; expected 'keep' or 'regenerate'")
    return a


@dataclass(frozen=True)
class Decision:
    """A routing decision; Q values are filled by value-based policies (``q_regenerate`` includes the
    price of this step's strong tokens) and stay None for rules such as the threshold."""

    action: str  # "keep" | "regenerate"
    q_keep: float | None = None
    q_regenerate: float | None = None

    @property
    def regenerate(self) -> bool:
        return self.action == "regenerate"


@dataclass(frozen=True)
class PastStep:
    """What was observed and done at one earlier step (the history a learned policy may use)."""

    score: float          # PRM score of the cheap step
    n_tokens: int         # its tokens
    action: str           # what was done with it
    strong_tokens: int = 0


@dataclass(frozen=True)
class StepObservation:
    """Everything observable when step ``step`` is decided: nothing hidden, nothing from the future.

    ``min_earlier`` is the running minimum of the PRM scores that count toward the observation pair
    (1.0 before any); ``belief`` is the belief updater's posterior over the hidden states after this
    observation, or None when no updater runs (rules that need none); ``remaining`` is the remaining hard
    budget in the cap's units, None without a cap.
    """

    step: int                               # 1-based step index
    n_tokens: int                           # tokens of the cheap step just written
    score: float                            # its PRM score
    min_earlier: float = 1.0
    belief: np.ndarray | None = None
    history: tuple[PastStep, ...] = field(default_factory=tuple)

    @property
    def pair(self) -> tuple[float, float]:
        """The 2-D observation (min earlier score, current score) the TRIM observation model reads."""
        return (self.min_earlier, self.score)


@runtime_checkable
class RoutingPolicy(Protocol):
    """Decides keep/regenerate per step. ``needs_belief`` asks the caller to run a ``BeliefUpdater``."""

    name: str
    needs_belief: bool

    def start(self) -> Any:
        """Per-question state at the start of a question (e.g. the whole remaining budget)."""

    def act(self, state: Any, obs: StepObservation) -> tuple[Decision, Any]:
        """The decision for this step and the state after it; ``state`` itself is left unchanged."""


@runtime_checkable
class BatchRoutingPolicy(Protocol):
    """A routing policy the vectorised simulator can run: one call decides a step for many questions.
    ``levels`` are the budget levels left (capped policies only); returns a boolean 'regenerate' per row."""

    name: str
    needs_belief: bool

    def decide_many(self, beliefs: np.ndarray, step: int, costs: np.ndarray, scores: np.ndarray,
                    levels: np.ndarray | None = None) -> np.ndarray: ...


@runtime_checkable
class BeliefPolicy(Protocol):
    """A policy of a tabular POMDP acting on beliefs (an alpha-vector policy): what simulation and exact
    evaluation need."""

    def action(self, belief): ...

    def value(self, belief): ...


@runtime_checkable
class BeliefUpdater(Protocol):
    """Bayes filter over a model's hidden states (POMDPs.jl's ``Updater``)."""

    def initialize(self) -> np.ndarray:
        """The belief before the first observation."""

    def update(self, belief: np.ndarray, action, observation) -> np.ndarray:
        """The posterior after taking ``action`` from ``belief`` and then seeing ``observation``."""


@runtime_checkable
class TracedUpdater(BeliefUpdater, Protocol):
    """An updater that can also show its work: the predicted belief before the observation, and the bin
    of the planner's observation table an observation falls in (both recorded in decode traces)."""

    def predict(self, belief: np.ndarray, action) -> np.ndarray: ...

    def observation_index(self, observation) -> int: ...


@runtime_checkable
class Solver(Protocol):
    """Turns a model into a policy (offline planning)."""

    def solve(self, model) -> Any: ...


@runtime_checkable
class StepGenerator(Protocol):
    """Writes the next step for each prefix. ``keys`` (optional, one per prefix) name the problem a prefix
    belongs to so that a backend can keep that problem's KV cache between calls."""

    name: str
    prompt_style: str

    def generate_steps(self, prefixes: Sequence[str], max_new_tokens: int,
                       keys: Sequence[str] | None = None) -> list: ...


@runtime_checkable
class StepScorer(Protocol):
    """A process reward model: the probability that the LAST step of each step list is correct."""

    name: str

    def score(self, question: str | Sequence[str], steps_list: Sequence[Sequence[str]]) -> list[float]: ...
