"""Mixed observability (MOMDP; Ong, Png, Hsu & Lee, IJRR 2010): a POMDP whose state is a pair (x, y) of a
fully observed part x and a hidden part y.

The agent always knows x, so a belief is (x, b_y) with b_y a distribution over the Y hidden values only,
and the value function is one piecewise-linear function of b_y per visible value: alpha vectors are Y long
and carry the visible value they belong to. On RockSample[7,8] that is 256 numbers per vector instead of
12,800, which is what makes point-based backups cheap on factored models.

Dynamics factor as T = P(x' | x, y, a) P(y' | x, y, a, x') and the agent sees x' together with an
observation o ~ O(o | x', y', a). ``MOMDP`` keeps the model in its flat form ``flat`` (a ``POMDP``) with
the structure made explicit, so that every reader, validator, bound and simulator of flat models applies
unchanged:

* joint states are visible-major: s = x * Y + y;
* flat observations fold the visible value in: o_flat = o * X + x' (what the ``.pomdpx`` reader's flat path
  produces when the visible variables come first), so O_flat(o_flat | s', a) is non-zero only when the x'
  of o_flat is the x' of s'.

A flat POMDP is the MOMDP with one visible value (``from_pomdp``). The factors are views computed on
demand (``transition_x``, ``transition_y``, ``observation``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from trimpomdp.errors import BeliefError, ModelError
from trimpomdp.pomdp.model import POMDP, ROW_SUM_TOL


@dataclass(frozen=True, eq=False)
class MOMDP:
    """A mixed-observability model: ``flat`` plus its X visible values, Y hidden values and Zo observations.

    Built by ``from_joint`` (joint transitions), ``from_factors`` (P(x'|x,y,a), P(y'|x,y,a,x')),
    ``from_pomdp`` (one visible value) or the ``.pomdpx`` reader (``read_pomdpx(path, momdp=True)``).
    """

    flat: POMDP
    visible: tuple[str, ...]
    hidden: tuple[str, ...]
    observations: tuple[str, ...]
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_joint(cls, T, O, R, discount: float, n_visible: int, initial_belief=None,
                   visible: Sequence[str] | None = None, hidden: Sequence[str] | None = None,
                   actions: Sequence[str] | None = None, observations: Sequence[str] | None = None,
                   terminal=None, states: Sequence[str] | None = None, name: str = "",
                   validate: bool = True) -> "MOMDP":
        """From joint transitions T (A, S, S), observations O (A, S, Zo) over s' = (x', y'), rewards R (S, A).

        Joint states are visible-major (s = x * Y + y, S = X * Y); arrays may be dense or per-action sparse.
        """
        R = np.asarray(R, dtype=np.float64)
        if R.ndim != 2:
            raise ModelError(f"R must have shape (S, A), got {R.shape}")
        S, A = R.shape
        X = int(n_visible)
        if X < 1 or S % X:
            raise ModelError(f"{S} joint states cannot be split into {X} visible values of equal size")
        Y = S // X
        O = [sp.csr_matrix(m, dtype=np.float64) for m in (list(O) if not isinstance(O, np.ndarray) else O)]
        if len(O) != A:
            raise ModelError(f"O needs one matrix per action ({A}), got {len(O)}")
        Zo = O[0].shape[1]
        for a, m in enumerate(O):
            if m.shape != (S, Zo):
                raise ModelError(f"O[{a}] has shape {m.shape}, expected ({S}, {Zo})")
        visible = _names(visible, X, "v", "visible")
        hidden = _names(hidden, Y, "h", "hidden")
        observations = _names(observations, Zo, "o", "observation")
        if states is None:
            states = [_join(xn, yn, X, Y) for xn in visible for yn in hidden]
        x_of = np.repeat(np.arange(X), Y)
        flat_O = [_fold(m, x_of, X) for m in O]
        obs_flat = [_join(on, xn, Zo, X) for on in observations for xn in visible]
        flat = POMDP.from_arrays(T, flat_O, R, discount, initial_belief, states, actions, obs_flat, terminal,
                                 name, validate=validate)
        return cls(flat, tuple(visible), tuple(hidden), tuple(observations))

    @classmethod
    def from_factors(cls, TX, TY, O, R, discount: float, initial_belief=None, **names) -> "MOMDP":
        """From the factors: TX (A, S, X) = P(x' | x, y, a), TY (A, S, X, Y) = P(y' | x, y, a, x') (dense),
        O (A, S, Zo) = O(o | x', y', a), R (S, A); s = x * Y + y. Meant for small models and tests."""
        TX = np.asarray(TX, dtype=np.float64)
        TY = np.asarray(TY, dtype=np.float64)
        if TX.ndim != 3 or TY.ndim != 4 or TY.shape[:3] != TX.shape:
            raise ModelError(f"TX must be (A, S, X) and TY (A, S, X, Y), got {TX.shape} and {TY.shape}")
        A, S, X = TX.shape
        T = (TX[:, :, :, None] * TY).reshape(A, S, -1)
        return cls.from_joint(T, O, R, discount, X, initial_belief, **names)

    @classmethod
    def from_pomdp(cls, model: POMDP) -> "MOMDP":
        """A flat POMDP as the MOMDP with one visible value (hidden = its states)."""
        return cls(model, ("",), tuple(model.states), tuple(model.observations))

    @classmethod
    def from_flat(cls, flat: POMDP, visible: Sequence[str], hidden: Sequence[str],
                  observations: Sequence[str]) -> "MOMDP":
        """Wrap a flat model already laid out as described in the module docstring; checks the layout."""
        m = cls(flat, tuple(visible), tuple(hidden), tuple(observations))
        m.check_structure()
        return m

    # ------------------------------------------------------------------ sizes and views
    @property
    def n_visible(self) -> int:
        return len(self.visible)

    @property
    def n_hidden(self) -> int:
        return len(self.hidden)

    @property
    def n_states(self) -> int:
        return self.flat.n_states

    @property
    def n_actions(self) -> int:
        return self.flat.n_actions

    @property
    def n_observations(self) -> int:
        """Zo, the observations proper (the visible value is seen besides them)."""
        return len(self.observations)

    @property
    def actions(self) -> tuple[str, ...]:
        return self.flat.actions

    @property
    def discount(self) -> float:
        return self.flat.discount

    @property
    def R(self) -> np.ndarray:
        return self.flat.R

    @property
    def initial_belief(self) -> np.ndarray:
        return self.flat.initial_belief

    @property
    def terminal(self):
        return self.flat.terminal

    @property
    def name(self) -> str:
        return self.flat.name

    def value_problem(self) -> str | None:
        """``POMDP.value_problem`` of the flat form."""
        return self.flat.value_problem()

    def check_value_finite(self) -> "MOMDP":
        self.flat.check_value_finite()
        return self

    def fingerprint(self) -> str:
        """The flat form's fingerprint: a policy solved on the MOMDP fits its flat form and vice versa."""
        return self.flat.fingerprint()

    def visible_of(self) -> np.ndarray:
        """(S,) the visible value of each joint state."""
        return np.repeat(np.arange(self.n_visible), self.n_hidden)

    def transition_x(self, a: int) -> sp.csr_matrix:
        """(S, X) P(x' | x, y, a), rows s = x * Y + y."""
        X, Y = self.n_visible, self.n_hidden
        fold = sp.csr_matrix((np.ones(X * Y), (np.arange(X * Y), self.visible_of())), shape=(X * Y, X))
        return sp.csr_matrix(self.flat.T[a] @ fold)

    def transition_y(self, a: int, x: int, xp: int) -> np.ndarray:
        """(Y, Y) P(y' | x, y, a, x'): row y is the distribution of y' given (x, y) and the visible outcome
        x'; rows where x' cannot follow (x, y) are zero."""
        Y = self.n_hidden
        block = self.flat.T[a][x * Y:(x + 1) * Y, xp * Y:(xp + 1) * Y].toarray()
        px = block.sum(axis=1, keepdims=True)
        return np.divide(block, px, out=np.zeros_like(block), where=px > 0)

    def observation(self, a: int) -> sp.csr_matrix:
        """(S, Zo) O(o | x', y', a), rows s' = x' * Y + y'."""
        key = ("obs", a)
        if key not in self._cache:
            m = self.flat.O[a].tocoo()
            self._cache[key] = sp.csr_matrix((m.data, (m.row, m.col // self.n_visible)),
                                             shape=(self.n_states, self.n_observations))
        return self._cache[key]

    def flat_observation(self, o: int, xp: int) -> int:
        """The flat model's observation index for observation o seen with visible value x'."""
        return o * self.n_visible + xp

    def initial_visible(self) -> int | None:
        """The visible value the initial belief is certain of, or None when it is uncertain."""
        xs = np.unique(self.visible_of()[self.initial_belief > 0])
        return int(xs[0]) if xs.size == 1 else None

    # ------------------------------------------------------------------ beliefs (x, b_y)
    def join(self, x: int, b_y) -> np.ndarray:
        """The flat belief of (x, b_y)."""
        b = np.zeros(self.n_states)
        Y = self.n_hidden
        b[x * Y:(x + 1) * Y] = np.asarray(b_y, dtype=np.float64)
        return b

    def split(self, belief) -> tuple[int, np.ndarray]:
        """(x, b_y) of a flat belief that is certain of its visible value (else ``BeliefError``)."""
        B = np.asarray(belief, dtype=np.float64).reshape(self.n_visible, self.n_hidden)
        xs = np.flatnonzero(B.sum(axis=1) > 0)
        if xs.size != 1:
            raise BeliefError(f"the belief spreads over {xs.size} visible values; a MOMDP belief has one")
        return int(xs[0]), B[xs[0]].copy()

    def update(self, x: int, b_y, a: int, xp: int, o: int) -> tuple[np.ndarray, float]:
        """Posterior b'_y after action a from (x, b_y), seeing x' and o; with P(x', o | x, b_y, a).

        b'(y') ~ O(o | x', y', a) sum_y b(y) P(x', y' | x, y, a); ``BeliefError`` when (x', o) is impossible.
        """
        Y = self.n_hidden
        b_y = np.asarray(b_y, dtype=np.float64)
        pred = self.flat.T[a][x * Y:(x + 1) * Y, xp * Y:(xp + 1) * Y].T @ b_y
        post = pred * self.observation(a)[xp * Y:(xp + 1) * Y, [o]].toarray().ravel()
        z = float(post.sum())
        if not z > 0.0:
            raise BeliefError(f"visible value {self.visible[xp]!r} with observation {self.observations[o]!r} "
                              f"has probability zero after action {self.actions[a]!r} from this belief")
        return post / z, z

    # ------------------------------------------------------------------ validation
    def structure_problem(self) -> str | None:
        """Why ``flat`` is not laid out as a MOMDP of these sizes (one line), or None."""
        X, Y, Zo = self.n_visible, self.n_hidden, self.n_observations
        f = self.flat
        if X * Y != f.n_states:
            return f"{X} visible x {Y} hidden values do not make the {f.n_states} joint states"
        if Zo * X != f.n_observations:
            return f"{Zo} observations x {X} visible values do not make the {f.n_observations} flat observations"
        x_of = self.visible_of()
        for a, m in enumerate(f.O):
            coo = m.tocoo()
            bad = np.flatnonzero(coo.col % X != x_of[coo.row])
            if bad.size:
                i = bad[0]
                return (f"O[{f.actions[a]}] gives flat observation {f.observations[coo.col[i]]!r} in state "
                        f"{f.states[coo.row[i]]!r}, whose visible value is {self.visible[x_of[coo.row[i]]]!r}")
        return None

    def check_structure(self) -> "MOMDP":
        why = self.structure_problem()
        if why is not None:
            raise ModelError(f"{self.name or 'model'}: not a MOMDP layout: {why}")
        return self

    def validate(self, tol: float = ROW_SUM_TOL) -> "MOMDP":
        self.flat.validate(tol)
        return self.check_structure()

    def __repr__(self) -> str:
        return (f"MOMDP({self.name or 'unnamed'}: {self.n_visible} visible x {self.n_hidden} hidden values, "
                f"{self.n_actions} actions, {self.n_observations} observations, discount {self.discount:g})")


def _names(names, n: int, prefix: str, what: str) -> list[str]:
    if names is None:
        return [f"{prefix}{i}" for i in range(n)] if n > 1 else [""]
    names = [str(v) for v in names]
    if len(names) != n:
        raise ModelError(f"{len(names)} {what} names for {n} {what} values")
    return names


def _join(a: str, b: str, na: int, nb: int) -> str:
    """Joint name of two parts, leaving out a part that has a single (unnamed) value."""
    if nb == 1 and not b:
        return a
    if na == 1 and not a:
        return b
    return f"{a}_{b}"


def _fold(m: sp.csr_matrix, x_of: np.ndarray, X: int) -> sp.csr_matrix:
    """O(o | s') over Zo columns -> the flat (S, Zo * X) matrix with o_flat = o * X + x(s')."""
    coo = m.tocoo()
    return sp.csr_matrix((coo.data, (coo.row, coo.col * X + x_of[coo.row])), shape=(m.shape[0], m.shape[1] * X))
