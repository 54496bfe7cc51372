"""The tabular POMDP: one immutable container that every reader, solver and simulator shares.

Transitions and observations are stored sparsely, one CSR matrix per action (``T[a]`` is S x S with rows
indexed by s and columns by s'; ``O[a]`` is S x O with rows indexed by s'), because the classic large
benchmarks are very sparse (RockSample[7,8] has 12,545 states but a handful of successors per state).
Dense views are built on demand for the solvers that want them on small models.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from trimpomdp.errors import ModelError

#: tolerance on row sums of stochastic matrices (Cassandra files often carry 4-6 printed digits)
ROW_SUM_TOL = 1e-4


def _as_csr_list(mats, n_rows: int, n_cols: int, what: str) -> tuple[sp.csr_matrix, ...]:
    if isinstance(mats, np.ndarray) and mats.ndim == 3:
        mats = list(mats)
    out = []
    for a, m in enumerate(mats):
        m = sp.csr_matrix(m, dtype=np.float64)
        if m.shape != (n_rows, n_cols):
            raise ModelError(f"{what}[{a}] has shape {m.shape}, expected ({n_rows}, {n_cols})")
        m.sum_duplicates()
        m.eliminate_zeros()
        m.sort_indices()
        out.append(m)
    return tuple(out)


@dataclass(frozen=True, eq=False)
class POMDP:
    """A finite POMDP with names for states, actions and observations.

    ``R[s, a]`` is the expected immediate reward of taking ``a`` in ``s`` (rewards given per
    (s, a, s', o) are folded into this expectation by the readers). ``terminal`` marks absorbing states
    whose value is zero (optional; ``None`` when the model has none).
    """

    states: tuple[str, ...]
    actions: tuple[str, ...]
    observations: tuple[str, ...]
    T: tuple[sp.csr_matrix, ...]
    O: tuple[sp.csr_matrix, ...]
    R: np.ndarray
    discount: float
    initial_belief: np.ndarray
    terminal: np.ndarray | None = None
    name: str = ""
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls,
        T,
        O,
        R,
        discount: float,
        initial_belief=None,
        states: Sequence[str] | None = None,
        actions: Sequence[str] | None = None,
        observations: Sequence[str] | None = None,
        terminal=None,
        name: str = "",
        validate: bool = True,
    ) -> "POMDP":
        """Build from dense or sparse arrays: T (A,S,S), O (A,S,O), R (S,A); names default to indices."""
        R = np.asarray(R, dtype=np.float64)
        if R.ndim != 2:
            raise ModelError(f"R must have shape (S, A), got {R.shape}")
        S, A = R.shape
        if isinstance(O, np.ndarray):
            n_obs = O.shape[-1]
        else:
            n_obs = sp.csr_matrix(O[0]).shape[1]
        states = tuple(states) if states is not None else tuple(str(i) for i in range(S))
        actions = tuple(actions) if actions is not None else tuple(str(i) for i in range(A))
        observations = tuple(observations) if observations is not None else tuple(str(i) for i in range(n_obs))
        if len(states) != S or len(actions) != A or len(observations) != n_obs:
            raise ModelError(
                f"names do not match shapes: {len(states)} states / {len(actions)} actions / "
                f"{len(observations)} observations for R {R.shape} and {n_obs} observation columns"
            )
        if len(T) != A or len(O) != A:
            raise ModelError(f"T and O need one matrix per action ({A}), got {len(T)} and {len(O)}")
        b0 = np.full(S, 1.0 / S) if initial_belief is None else np.asarray(initial_belief, dtype=np.float64)
        term = None if terminal is None else np.asarray(terminal, dtype=bool)
        model = cls(
            states=states,
            actions=actions,
            observations=observations,
            T=_as_csr_list(T, S, S, "T"),
            O=_as_csr_list(O, S, n_obs, "O"),
            R=R,
            discount=float(discount),
            initial_belief=b0,
            terminal=term,
            name=name,
        )
        if validate:
            model.validate()
        return model

    # ------------------------------------------------------------------ sizes and views
    @property
    def n_states(self) -> int:
        return len(self.states)

    @property
    def n_actions(self) -> int:
        return len(self.actions)

    @property
    def n_observations(self) -> int:
        return len(self.observations)

    def T_dense(self) -> np.ndarray:
        """T as a dense (A, S, S) array (cached); only sensible for small models."""
        if "T" not in self._cache:
            self._cache["T"] = np.stack([m.toarray() for m in self.T])
        return self._cache["T"]

    def O_dense(self) -> np.ndarray:
        """O as a dense (A, S, O) array (cached); only sensible for small models."""
        if "O" not in self._cache:
            self._cache["O"] = np.stack([m.toarray() for m in self.O])
        return self._cache["O"]

    def nnz(self) -> dict[str, int]:
        return {"T": int(sum(m.nnz for m in self.T)), "O": int(sum(m.nnz for m in self.O))}

    def sparsity(self) -> dict[str, float]:
        """Fraction of zero entries in T and O (1.0 = all zero)."""
        nz = self.nnz()
        S, A, Z = self.n_states, self.n_actions, self.n_observations
        return {"T": 1.0 - nz["T"] / (A * S * S), "O": 1.0 - nz["O"] / (A * S * Z)}

    def index(self, kind: str, name_or_index) -> int:
        """Index of a state/action/observation given its name or its index."""
        names = {"state": self.states, "action": self.actions, "observation": self.observations}[kind]
        if isinstance(name_or_index, (int, np.integer)):
            if not 0 <= name_or_index < len(names):
                raise ModelError(f"{kind} index {name_or_index} out of range 0..{len(names) - 1}")
            return int(name_or_index)
        try:
            return names.index(name_or_index)
        except ValueError:
            raise ModelError(f"unknown {kind} {name_or_index!r}") from None

    def fingerprint(self) -> str:
        """A SHA-256 over the model's numbers and names: policies record it to detect a model mismatch."""
        if "fp" not in self._cache:
            h = hashlib.sha256()
            for names in (self.states, self.actions, self.observations):
                h.update("\x1f".join(names).encode())
                h.update(b"\x1e")
            for mats in (self.T, self.O):
                for m in mats:
                    for arr in (m.indptr, m.indices, np.round(m.data, 12)):
                        h.update(np.ascontiguousarray(arr).tobytes())
            h.update(np.round(self.R, 12).tobytes())
            h.update(np.round(self.initial_belief, 12).tobytes())
            h.update(repr(round(self.discount, 12)).encode())
            self._cache["fp"] = h.hexdigest()
        return self._cache["fp"]

    # ------------------------------------------------------------------ validation
    def validation_problems(self, tol: float = ROW_SUM_TOL) -> list[str]:
        """All problems found, as one-line messages (empty when the model is valid)."""
        probs: list[str] = []
        S = self.n_states
        if not (0.0 < self.discount <= 1.0) or not np.isfinite(self.discount):
            probs.append(f"discount {self.discount} is outside (0, 1]")
        if self.R.shape != (S, self.n_actions):
            probs.append(f"R has shape {self.R.shape}, expected ({S}, {self.n_actions})")
        elif not np.all(np.isfinite(self.R)):
            s, a = np.argwhere(~np.isfinite(self.R))[0]
            probs.append(f"R[{self.states[s]}, {self.actions[a]}] is not finite")
        b = self.initial_belief
        if b.shape != (S,):
            probs.append(f"initial belief has shape {b.shape}, expected ({S},)")
        elif np.any(b < -1e-12) or abs(b.sum() - 1.0) > tol:
            probs.append(f"initial belief must be non-negative and sum to 1 (sums to {b.sum():.6g})")
        for kind, mats, row_names, col_names in (
            ("T", self.T, self.states, self.states),
            ("O", self.O, self.states, self.observations),
        ):
            for a, m in enumerate(mats):
                act = self.actions[a]
                if m.nnz and (m.data.min() < 0 or m.data.max() > 1 + 1e-9 or not np.all(np.isfinite(m.data))):
                    bad = np.flatnonzero((m.data < 0) | (m.data > 1 + 1e-9) | ~np.isfinite(m.data))[0]
                    row = np.searchsorted(m.indptr, bad, side="right") - 1
                    probs.append(
                        f"{kind}[{act}][{row_names[row]}, {col_names[m.indices[bad]]}] = {m.data[bad]:g} "
                        "is not a probability in [0, 1]"
                    )
                    continue
                sums = np.asarray(m.sum(axis=1)).ravel()
                bad_rows = np.flatnonzero(np.abs(sums - 1.0) > tol)
                if bad_rows.size:
                    r = bad_rows[0]
                    more = f" (and {bad_rows.size - 1} more rows)" if bad_rows.size > 1 else ""
                    probs.append(f"{kind}[{act}] row {row_names[r]!r} sums to {sums[r]:.6g}, expected 1{more}")
        if self.terminal is not None and self.terminal.shape != (S,):
            probs.append(f"terminal mask has shape {self.terminal.shape}, expected ({S},)")
        return probs

    def validate(self, tol: float = ROW_SUM_TOL) -> "POMDP":
        """Raise ``ModelError`` naming the first problem (and how many more there are)."""
        probs = self.validation_problems(tol)
        if probs:
            extra = f" ({len(probs) - 1} more problems)" if len(probs) > 1 else ""
            prefix = f"{self.name}: " if self.name else ""
            raise ModelError(prefix + probs[0] + extra)
        return self

    # ------------------------------------------------------------------ finite value (discount 1)
    def undiscounted_structure(self) -> "UndiscountedStructure":
        """Graph analysis behind ``value_problem`` (cached): see ``UndiscountedStructure``."""
        if "undiscounted" not in self._cache:
            self._cache["undiscounted"] = _undiscounted_structure(self)
        return self._cache["undiscounted"]

    def value_problem(self) -> str | None:
        """Why the optimal value might be infinite, as one line; ``None`` when it is certainly finite.

        Discounted models always have a finite value. With discount 1 the value is certified finite when
        (i) no action with a positive reward can be repeated forever while avoiding the absorbing zero-reward
        states (every end component outside them has rewards <= 0 only), which bounds it above, and (ii) some
        action, taken forever, ends in zero-reward states from every state, which bounds it below. Both are
        decided on the transition graph alone (``UndiscountedStructure``), once, before any solve.
        """
        if not self.discount >= 1.0:
            return None
        return self.undiscounted_structure().problem

    def check_value_finite(self) -> "POMDP":
        """Raise ``ModelError`` (one line) when ``value_problem`` finds the value may be infinite."""
        why = self.value_problem()
        if why is not None:
            raise ModelError(f"{self.name or 'model'}: {why}")
        return self

    def normalized(self) -> "POMDP":
        """A copy whose stochastic rows are renormalised exactly (files print rounded numbers)."""

        def norm(mats):
            out = []
            for m in mats:
                sums = np.asarray(m.sum(axis=1)).ravel()
                sums[sums == 0] = 1.0
                out.append(sp.csr_matrix(sp.diags(1.0 / sums) @ m))
            return out

        b = self.initial_belief / self.initial_belief.sum()
        return POMDP.from_arrays(
            norm(self.T), norm(self.O), self.R, self.discount, b, self.states, self.actions,
            self.observations, self.terminal, self.name,
        )

    def __repr__(self) -> str:
        return (
            f"POMDP({self.name or 'unnamed'}: {self.n_states} states, {self.n_actions} actions, "
            f"{self.n_observations} observations, discount {self.discount:g})"
        )


# ---------------------------------------------------------------------------------------------------------
# Undiscounted models. Terminal states are absorbing with zero reward (as every solver treats them). Let G be
# the largest set of states that is closed under every action and earns zero reward under every action. An
# end component (EC) is a set of states outside G with, for each, a non-empty set of actions whose successors
# all stay in the set, strongly connected under those actions. Under any policy, the state-action pairs taken
# infinitely often form an EC with probability 1, so a positive-reward pair outside every EC is taken a
# bounded expected number of times (bounded over all policies); if every EC pair has reward <= 0, the value
# is bounded above. Below, the blind policy "always a" is a real policy: its value is finite from every
# state when every closed class (bottom strongly connected component) of T[a] earns zero reward under a.
# ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class UndiscountedStructure:
    """What ``value_problem`` found on the transition graph (terminal states made absorbing, zero reward).

    ``absorbing``: the zero-reward absorbing set G; ``ec_id``: for each state, its maximal end component
    outside G (-1 for none); ``ec_pair[a, s]``: action a keeps s inside its end component; ``closed[a, s]``:
    s lies in a closed class of T[a]; ``blind_finite[a]``: repeating a forever has a finite value from every
    state; ``problem``: the reason the value may be infinite, or ``None``.
    """

    absorbing: np.ndarray
    ec_id: np.ndarray
    ec_pair: np.ndarray
    closed: np.ndarray
    blind_finite: np.ndarray
    problem: str | None


def effective_dynamics(model: "POMDP") -> tuple[list[sp.csr_matrix], np.ndarray]:
    """Per-action transitions and rewards with terminal states absorbing at zero reward."""
    T = list(model.T)
    R = np.array(model.R, dtype=np.float64)
    term = model.terminal
    if term is not None and np.any(term):
        keep = sp.diags((~term).astype(np.float64))
        loop = sp.diags(term.astype(np.float64))
        T = [sp.csr_matrix(keep @ m + loop) for m in T]
        for m in T:
            m.eliminate_zeros()
            m.sort_indices()
        R[term, :] = 0.0
    return T, R


def _row_ids(m: sp.csr_matrix) -> np.ndarray:
    return np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))


def _undiscounted_structure(model: "POMDP") -> UndiscountedStructure:
    from scipy.sparse.csgraph import breadth_first_order, connected_components

    T, R = effective_dynamics(model)
    S, A = R.shape
    pattern = [sp.csr_matrix((np.ones(m.nnz), m.indices, m.indptr), shape=(S, S)) for m in T]
    # G: the states from which no state with a non-zero reward can be reached under any actions
    union = sum(pattern[1:], pattern[0]).tocoo()
    seeds = np.flatnonzero(np.any(R != 0.0, axis=1))
    reach_bad = np.zeros(S, dtype=bool)
    if seeds.size:  # breadth-first search on the reversed graph from a virtual node S linked to the seeds
        rev = sp.csr_matrix((np.ones(union.nnz + seeds.size), (np.r_[union.col, np.full(seeds.size, S)],
                                                               np.r_[union.row, seeds])), shape=(S + 1, S + 1))
        order = breadth_first_order(rev, S, directed=True, return_predecessors=False)
        reach_bad[order[order < S]] = True
    absorbing = ~reach_bad
    # maximal end components outside G: drop pairs that leave their SCC until nothing changes
    alive = np.zeros((A, S), dtype=bool)
    rows = [_row_ids(m) for m in pattern]
    for a, m in enumerate(pattern):
        leaves = np.bincount(rows[a][absorbing[m.indices]], minlength=S) > 0
        alive[a] = ~absorbing & ~leaves
    while True:
        states = alive.any(axis=0)
        edges = sum(sp.diags(alive[a].astype(float)) @ pattern[a] for a in range(A))
        _, comp = connected_components(sp.csr_matrix(edges), directed=True, connection="strong")
        changed = False
        for a, m in enumerate(pattern):
            r = rows[a]
            bad = (comp[m.indices] != comp[r]) | ~states[m.indices]
            out = alive[a] & (np.bincount(r[bad], minlength=S) > 0)
            if out.any():
                alive[a] &= ~out
                changed = True
        if not changed:
            break
    in_ec = alive.any(axis=0)
    _, ec_id = np.unique(comp[in_ec], return_inverse=True)
    ec = np.full(S, -1)
    ec[in_ec] = ec_id
    # blind policies: each closed class of T[a] must earn zero reward under a
    blind_finite = np.zeros(A, dtype=bool)
    closed = np.zeros((A, S), dtype=bool)
    blind_bad: list[tuple[int, int]] = []
    for a, m in enumerate(pattern):
        n, lab = connected_components(m, directed=True, connection="strong")
        r = rows[a]
        exits = np.bincount(lab[r][lab[m.indices] != lab[r]], minlength=n) > 0
        bottom = closed[a] = ~exits[lab]
        bad_states = np.flatnonzero(bottom & (R[:, a] != 0.0))
        blind_finite[a] = bad_states.size == 0
        if bad_states.size:
            blind_bad.append((a, int(bad_states[0])))
    problem = None
    pos = alive & (R.T > 0.0)
    if pos.any():
        a, s = np.argwhere(pos)[0]
        problem = (f"discount 1 but the value may be unbounded: action {model.actions[a]!r} earns "
                   f"{R[s, a]:g} > 0 in state {model.states[s]!r} and a policy can repeat it forever without "
                   "reaching an absorbing zero-reward state; use a discount < 1 (e.g. 0.95)")
    elif not blind_finite.any():
        a, s = blind_bad[0]
        problem = (f"discount 1 but no finite value can be certified: no action, repeated forever, stops "
                   f"earning rewards (e.g. {model.actions[a]!r} keeps earning {R[s, a]:g} in state "
                   f"{model.states[s]!r}), so the value may be -infinite; use a discount < 1 (e.g. 0.95)")
    return UndiscountedStructure(absorbing, ec, alive, closed, blind_finite, problem)
