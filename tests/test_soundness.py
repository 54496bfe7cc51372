"""Undiscounted models: a value that may be infinite is refused before solving (one clean error), a
certified finite one is solved to its known value, bounds are never reported crossed or infinite, and
``info`` works as a validator (exit status = verdict)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from trimpomdp.cli.main import main
from trimpomdp.errors import ModelError
from trimpomdp.pomdp import load_model
from trimpomdp.pomdp.model import POMDP
from trimpomdp.solvers.bounds import QMDPSolver, blind_alphas, fib_alphas, positive_bound, qmdp_alphas
from trimpomdp.solvers.exact import ExactSolver
from trimpomdp.solvers.result import SolveResult, check_bounds
from trimpomdp.solvers.sarsop import SARSOPSolver

ROOT = Path(__file__).resolve().parents[1]

# Two hidden states and an absorbing zero-reward goal that every action reaches with probability 1/2 per
# step; action a earns 1 in s1, b earns 1 in s2, and the next state is observed. The first step earns 1/2 in
# expectation, every later one 1 while the goal is not reached: V* = 1/2 + sum_t>=1 2^-t = 1.5.
GOAL_POMDP = """\
discount: 1
values: reward
states: s1 s2 goal
actions: a b
observations: o1 o2 og
start: 0.5 0.5 0
T: a
0.5 0 0.5
0 0.5 0.5
0 0 1
T: b
0.5 0 0.5
0 0.5 0.5
0 0 1
O: a
identity
O: b
identity
R: a : s1 : * : * 1
R: b : s2 : * : * 1
"""
GOAL_VALUE = 1.5


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def undiscounted_copy(src: Path, dst: Path, discount: str = "1") -> Path:
    """``src`` with its discount line replaced (the issue's repro: edit the discount of a classic)."""
    lines = src.read_text().splitlines()
    i = next(k for k, line in enumerate(lines) if line.strip().lower().startswith("discount"))
    lines[i] = f"discount: {discount}"
    dst.write_text("\n".join(lines) + "\n")
    return dst


def tiger_exit(acc: float = 0.85) -> POMDP:
    """Tiger whose doors end the episode (an absorbing zero-reward state): listening forever is possible
    but costs -1 per step, so the value is finite although no policy is forced to stop."""
    go = np.array([[0, 0, 1.0]] * 3)
    T = [np.eye(3), go, go]
    O = [np.array([[acc, 1 - acc], [1 - acc, acc], [0.5, 0.5]]), np.full((3, 2), 0.5), np.full((3, 2), 0.5)]
    R = np.array([[-1.0, -100.0, 10.0], [-1.0, 10.0, -100.0], [0.0, 0.0, 0.0]])
    return POMDP.from_arrays(T, O, R, 1.0, [0.5, 0.5, 0.0], ["tiger-left", "tiger-right", "done"],
                             ["listen", "open-left", "open-right"], name="tiger-exit")


def tiger_exit_value(acc: float = 0.85, D: int = 60) -> float:
    """V*(b0) of ``tiger_exit`` by an independent route: optimal stopping on d = #left - #right hears."""
    d = np.arange(-D, D + 1)
    p = acc ** d / (acc ** d + (1 - acc) ** d)  # P(tiger-left | d)
    stop = np.maximum(-100 * p + 10 * (1 - p), 10 * p - 100 * (1 - p))
    hear_left = p * acc + (1 - p) * (1 - acc)
    V = stop.copy()
    for _ in range(100_000):
        Vn = np.maximum(stop, -1 + hear_left * np.r_[V[1:], V[-1]] + (1 - hear_left) * np.r_[V[0], V[:-1]])
        if np.max(np.abs(Vn - V)) < 1e-13:
            break
        V = Vn
    return float(V[D])


# ------------------------------------------------------------------ refusal of possibly infinite values
@pytest.mark.parametrize("name", ["tiger.95.POMDP", "Hallway.pomdp", "4x3.95.POMDP"])
@pytest.mark.parametrize("solver", ["sarsop", "qmdp", "exact"])
def test_undiscounted_classics_are_one_clean_error(capsys, pomdp_dir, tmp_path, name, solver):
    model = undiscounted_copy(pomdp_dir / name, tmp_path / f"u_{name}")
    out_file = tmp_path / "p.npz"
    t0 = time.perf_counter()
    code, out, err = run(capsys, "solve", model, "--solver", solver, "--progress", "none", "-o", out_file)
    assert time.perf_counter() - t0 < 10.0  # refused before solving (Tiger used to run without end)
    assert code == 2 and out == "" and not out_file.exists()
    assert err.count("\n") == 1 and err.startswith("Error: ")
    assert "discount 1" in err and "may be unbounded" in err and "discount < 1" in err
    # the verdict names an action with a positive reward that can be repeated forever
    m = load_model(model)
    assert m.discount == 1.0 and m.value_problem() is not None


def test_exact_solver_gives_the_same_refusal():
    m = tiger_exit()
    T, O, R = m.T_dense(), m.O_dense(), m.R.copy()
    R[2] = 1.0  # 'done' now pays forever: unbounded
    loop = POMDP.from_arrays(T, O, R, 1.0, m.initial_belief, name="loop")
    with pytest.raises(ModelError, match="may be unbounded"):
        ExactSolver().solve(loop)
    with pytest.raises(ModelError, match="may be unbounded"):
        SARSOPSolver().solve(loop)
    with pytest.raises(ModelError, match="may be unbounded"):
        QMDPSolver().solve(loop)
    # a certified finite value: the exact solver (whose residual bounds need a discount) points to SARSOP
    with pytest.raises(ModelError, match="discount < 1 or a finite horizon.*SARSOP"):
        ExactSolver().solve(m)
    assert ExactSolver(horizon=1).solve(loop).upper == pytest.approx(-1.0)  # finite horizons still solve


def test_negative_forever_is_refused_without_a_finite_blind_policy():
    """Rewards <= 0 bound the value above, but with every action earning -1 forever it is -infinite."""
    T = [np.eye(2), np.eye(2)[::-1]]
    O = [np.ones((2, 1)), np.ones((2, 1))]
    m = POMDP.from_arrays(T, O, -np.ones((2, 2)), 1.0, name="treadmill")
    assert "may be -infinite" in m.value_problem()
    with pytest.raises(ModelError, match="may be -infinite"):
        SARSOPSolver().solve(m)


# ------------------------------------------------------------------ certified finite values are solved
def test_goal_model_solves_to_its_exact_value(capsys, tmp_path):
    p = tmp_path / "goal.pomdp"
    p.write_text(GOAL_POMDP)
    assert load_model(p).value_problem() is None
    code, out, err = run(capsys, "info", p)
    assert code == 0 and out.rstrip().endswith("valid")
    code, out, err = run(capsys, "solve", p, "--progress", "none", "--precision", "1e-6", "-o",
                         tmp_path / "g.npz", "--json")
    assert code == 0, err
    d = json.loads(out.splitlines()[-1])
    assert d["lower"] - 1e-9 <= GOAL_VALUE <= d["upper"] + 1e-9 and d["upper"] - d["lower"] <= 1e-6
    code, out, _ = run(capsys, "solve", p, "--solver", "qmdp", "-o", tmp_path / "q.npz", "--json")
    d = json.loads(out.splitlines()[-1])
    assert code == 0 and d["lower"] <= GOAL_VALUE <= d["upper"]


def test_tiger_with_an_exit_solves_to_the_optimal_stopping_value():
    m = tiger_exit()
    assert m.value_problem() is None
    want = tiger_exit_value()
    res = SARSOPSolver(precision=1e-6, timeout=20).solve(m)
    assert res.converged and res.lower - 1e-9 <= want <= res.upper + 1e-9
    q = QMDPSolver().solve(m)
    assert q.lower <= want <= q.upper
    # 'listen' forever is worth -infinity: its blind vector is left out, the doors' ones are exact
    B = blind_alphas(m)
    assert np.all(B[0] == -np.inf) and B[1].tolist() == [-100.0, 10.0, 0.0] and B[2].tolist() == [10.0, -100.0, 0.0]
    assert positive_bound(m).tolist() == [10.0, 10.0, 0.0]


def test_concert_zero_cost_action_gives_a_finite_value(pomdp_dir):
    m = load_model(pomdp_dir / "concert.POMDP")
    assert m.discount == 1.0 and m.value_problem() is None
    assert positive_bound(m).tolist() == [0.0, 0.0]


def random_undiscounted(seed: int, S: int, A: int, Z: int) -> POMDP:
    """Sparse random dynamics over S states plus an absorbing zero-reward goal (the last state)."""
    rng = np.random.default_rng(seed)
    T = np.zeros((A, S + 1, S + 1))
    for a in range(A):
        for s in range(S):
            succ = rng.choice(S + 1, size=rng.integers(1, 3), replace=False)
            T[a, s, succ] = rng.dirichlet(np.ones(succ.size))
        T[a, S, S] = 1.0
    O = rng.dirichlet(np.ones(Z), size=(A, S + 1))
    R = rng.integers(-3, 3, size=(S + 1, A)).astype(float)
    R[S] = 0.0
    return POMDP.from_arrays(T, O, R, 1.0, np.r_[rng.dirichlet(np.ones(S)), 0.0])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 100_000), S=st.integers(1, 5), A=st.integers(1, 3), Z=st.integers(1, 2))
def test_certified_models_have_consistent_sound_bounds(seed, S, A, Z):
    """When the graph analysis certifies a finite value, the bound ingredients satisfy the inequalities the
    solvers rely on: W is excessive for the positive rewards, blind rows are exact policy values, and the
    upper bounds lie above the lower ones; SARSOP's bounds never cross."""
    m = random_undiscounted(seed, S, A, Z)
    if m.value_problem() is not None:
        with pytest.raises(ModelError):
            SARSOPSolver().solve(m)
        return
    T, R = m.T_dense(), m.R
    W = positive_bound(m)
    assert W.min() >= 0.0
    for a in range(m.n_actions):
        assert np.all(W >= np.maximum(R[:, a], 0.0) + T[a] @ W - 1e-9 * (1.0 + W))
    B = blind_alphas(m)
    fin = np.isfinite(B).all(axis=1)
    assert fin.any()
    for a in np.flatnonzero(fin):
        assert np.allclose(B[a], R[:, a] + T[a] @ B[a], atol=1e-9)
    Q, F = qmdp_alphas(m), fib_alphas(m)
    assert np.all(F.max(axis=0) <= Q.max(axis=0) + 1e-9)
    assert np.all(B[fin].max(axis=0) <= F.max(axis=0) + 1e-9)
    res = SARSOPSolver(precision=1e-4, timeout=5, seed=seed).solve(m)
    assert np.isfinite(res.lower) and res.lower <= res.upper + 1e-9


# ------------------------------------------------------------------ the last guard
def test_crossed_or_infinite_bounds_are_never_reported(capsys, monkeypatch, tmp_path, pomdp_dir):
    for lo, hi in ((2.0, 1.0), (-np.inf, 1.0), (0.0, np.nan)):
        with pytest.raises(ModelError):
            check_bounds(lo, hi, "m")
    check_bounds(1.0, 1.0 + 1e-12)
    check_bounds(1.0 + 1e-9, 1.0)  # float noise between two bounds is not a crossing

    def crossed(self, model):
        from trimpomdp.policies.alpha import AlphaVectorPolicy

        pol = AlphaVectorPolicy(np.zeros((1, model.n_states)), np.zeros(1, dtype=np.int64),
                                {"model_fingerprint": model.fingerprint()})
        return SolveResult(pol, lower=-985643.0, upper=-100016.0 * 10, solve_seconds=0.0)

    monkeypatch.setattr(QMDPSolver, "solve", crossed)
    out_file = tmp_path / "p.npz"
    code, out, err = run(capsys, "solve", pomdp_dir / "tiger.95.POMDP", "--solver", "qmdp", "-o", out_file)
    assert code == 2 and err.count("\n") == 1 and "exceeds its upper bound" in err and not out_file.exists()


# ------------------------------------------------------------------ info as a validator
def test_info_exit_status_is_its_verdict(capsys, pomdp_dir, tmp_path):
    code, out, _ = run(capsys, "info", undiscounted_copy(pomdp_dir / "tiger.95.POMDP", tmp_path / "d.pomdp", "1.7"))
    assert code == 1 and "INVALID" in out and "discount 1.7 is outside (0, 1]" in out
    bad_rows = tmp_path / "rows.pomdp"
    bad_rows.write_text("discount: 0.9\nstates: 2\nactions: 1\nobservations: 1\nT: 0\n0.5 0.4\n0 1\nO: 0\n1\n1\n")
    code, out, _ = run(capsys, "info", bad_rows)
    assert code == 1 and "INVALID" in out and "sums to 0.9" in out
    code, out, _ = run(capsys, "info", undiscounted_copy(pomdp_dir / "tiger.95.POMDP", tmp_path / "u.pomdp"))
    assert code == 1 and "UNBOUNDED" in out and "may be unbounded" in out
    code, out, _ = run(capsys, "info", tmp_path / "u.pomdp", "--json")
    d = json.loads(out)
    assert code == 1 and d["valid"] is True and d["solvable"] is False and d["verdict"] == "unbounded"
    for ok in (pomdp_dir / "tiger.95.POMDP", pomdp_dir / "concert.POMDP", pomdp_dir / "Hallway.pomdpx",
               ROOT / "data" / "tiger.95.POMDP"):
        code, out, _ = run(capsys, "info", ok, "--json")
        d = json.loads(out)
        assert code == 0 and d["verdict"] == "valid" and d["solvable"] is True
    code, _, err = run(capsys, "info", tmp_path / "missing.pomdp")
    assert code == 2 and err.startswith("Error: ")
