"""The SARSOP solver on MOMDPs: same values as the flat form, per-visible-value vectors, the successor closure
that keeps greedy policies at their bound, CLI use on .pomdpx files."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from trimpomdp.errors import ModelError
from trimpomdp.policies.alpha import AlphaVectorPolicy
from trimpomdp.policies.evaluation import evaluate_exact, simulate_policy
from trimpomdp.pomdp.momdp import MOMDP
from trimpomdp.pomdp.pomdpx import parse_pomdpx
from trimpomdp.solvers.exact import ExactSolver
from trimpomdp.solvers.sarsop import SARSOPSolver
from trimpomdp.solvers.sarsop.run import Run
from trimpomdp.solvers.sparse import to_sparse
from tests.test_momdp import random_momdp
from tests.test_pomdpx import FACTORED

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from rocksample import rocksample_model, rocksample_momdp, write_pomdpx  # noqa: E402


def test_rocksample_4_4_momdp_reaches_the_flat_optimum():
    m = rocksample_momdp(4, 4)
    assert (m.n_visible, m.n_hidden) == (17, 16)
    res = SARSOPSolver(precision=1e-3, timeout=20).solve(m)
    # the flat model's optimum (tests/test_sarsop.py): 18.0247
    assert res.converged and res.lower == pytest.approx(18.0247, abs=1e-3) and res.upper >= 18.0246
    pol = res.policy
    assert pol.n_visible == 17 and pol.alphas.shape[1] == 16 and pol.n_states == m.n_states
    assert pol.meta["momdp"] == {"visible": 17, "hidden": 16}
    assert pol.value(m.initial_belief) == pytest.approx(res.lower, abs=1e-9)
    # every visible value has vectors (at least the blind policies' floor)
    assert set(pol.visible.tolist()) == set(range(17))


def test_flat_and_momdp_forms_bound_the_exact_value():
    m = random_momdp(7, 2, 2, 2, 2)
    exact = ExactSolver(tol=1e-6).solve(m.flat)
    v = 0.5 * (exact.lower + exact.upper)
    for model in (m, m.flat):
        res = SARSOPSolver(precision=1e-4, timeout=20).solve(model)
        assert res.converged
        assert res.lower - 1e-5 <= v <= res.upper + 1e-5
        assert res.upper - res.lower <= 1e-4


def test_rocksample_5_5_flat_and_momdp_bounds_overlap():
    flat = SARSOPSolver(timeout=1.5).solve(rocksample_model(5, 5))
    mom = SARSOPSolver(timeout=1.5).solve(rocksample_momdp(5, 5))
    assert max(flat.lower, mom.lower) <= min(flat.upper, mom.upper) + 1e-6
    assert mom.policy.n_visible == 26 and flat.policy.n_visible == 1


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), X=st.integers(1, 3), Y=st.integers(1, 3), A=st.integers(1, 3),
       Zo=st.integers(1, 3))
def test_random_momdps_and_their_flat_forms_agree_within_the_gap(seed, X, Y, A, Zo):
    m = random_momdp(seed, X, Y, A, Zo)
    mom = SARSOPSolver(precision=1e-3, timeout=10).solve(m)
    flat = SARSOPSolver(precision=1e-3, timeout=10).solve(m.flat)
    tol = 1e-6 * (1 + abs(mom.lower))
    assert max(mom.lower, flat.lower) <= min(mom.upper, flat.upper) + tol
    # the vectors are over the hidden values of their visible value, and the policy reads flat beliefs
    assert mom.policy.alphas.shape[1] == Y and mom.policy.n_states == X * Y
    assert mom.policy.value(m.initial_belief) == pytest.approx(mom.lower, abs=1e-9)


@pytest.mark.parametrize("name", ["rs44", "random"])
def test_pruning_keeps_the_best_vector_of_every_belief_in_the_tree(name):
    # SARSOP's rule on MOMDPs: a vector lives while it is the best at some belief of the tree (leaves too)
    model = rocksample_momdp(4, 4) if name == "rs44" else random_momdp(3, 3, 3, 3, 3)
    run = Run(to_sparse(model), model, 1e-3, None, 60, False, 1e9, None, prune_delay=0)
    run.run()
    run.prune()
    n_alpha = int(run.st["n_alpha"])
    assert int(run.st["n_alive"]) < n_alpha  # pruning did drop vectors
    best = run.tree.arrays.best_alpha[:run.tree.n_nodes]
    assert best.min() >= 0 and run.alphas.alive[best].all()
    # each visible value's list holds exactly its live vectors
    for x in range(model.n_visible):
        k, seen = run.alphas.xhead[x], []
        while k >= 0:
            seen.append(k)
            k = run.alphas.xnext[k]
        want = np.flatnonzero(run.alphas.xval[:n_alpha] == x)
        assert sorted(seen) == want.tolist() and seen == sorted(seen, reverse=True)


def test_greedy_momdp_policy_achieves_its_bound():
    m = rocksample_momdp(4, 4)
    res = SARSOPSolver(timeout=0.5, prune_delay=0).solve(m)
    sim = simulate_policy(m.flat, res.policy, episodes=1500, seed=3)
    # the greedy policy achieves the bound; 1500 episodes put the mean within ~0.35 of it
    assert sim.ci95_high >= res.lower
    assert sim.ci95_low <= res.upper


class _FlatOnly:
    """A policy seen only through ``action`` on flat beliefs (forces the flat simulation)."""

    def __init__(self, pol):
        self.pol = pol

    def action(self, b):
        return self.pol.action(b)


def test_momdp_simulation_is_the_flat_simulation_on_smaller_beliefs():
    m = random_momdp(11, 3, 3, 2, 2)
    res = SARSOPSolver(timeout=2).solve(m)
    fast = simulate_policy(m, res.policy, episodes=3000, seed=5)
    flat = simulate_policy(m.flat, _FlatOnly(res.policy), episodes=3000, seed=5)
    # the same draws in the same order: the same episodes, so the same returns
    assert fast.mean == pytest.approx(flat.mean, abs=1e-9) and fast.std == pytest.approx(flat.std, abs=1e-9)
    # a MOMDP policy on the flat model takes the MOMDP path too
    assert simulate_policy(m.flat, res.policy, episodes=3000, seed=5).mean == pytest.approx(fast.mean, abs=1e-9)


def test_exact_evaluation_of_a_momdp_policy_meets_its_bounds():
    # observations reveal the hidden value after one step: few beliefs, so the belief tree is exact
    rng = np.random.default_rng(2)
    X, Y, A = 3, 2, 2
    S = X * Y
    TX = rng.dirichlet(np.ones(X), (A, S))
    TY = rng.dirichlet(np.ones(Y), (A, S, X))
    O = np.tile(np.eye(Y), (A, X, 1))  # O(o | x', y') = [o == y']
    b0 = np.zeros(S)
    b0[:Y] = [0.3, 0.7]
    m = MOMDP.from_factors(TX, TY, O, rng.normal(0, 2, (S, A)), 0.9, b0)
    res = SARSOPSolver(precision=1e-4, timeout=10).solve(m)
    assert res.converged
    exact = evaluate_exact(m, res.policy, tol=1e-6)
    assert exact.beliefs < 2000  # about 6 per level
    assert res.lower - exact.error - 1e-6 <= exact.value <= res.upper + exact.error + 1e-6
    sim = simulate_policy(m, res.policy, episodes=20_000, seed=1)
    assert sim.ci95_low - 0.02 <= exact.value <= sim.ci95_high + 0.02


def test_uncertain_initial_visible_value_is_refused():
    m = parse_pomdpx(FACTORED, momdp=True)
    with pytest.raises(ModelError, match="initial belief spreads over 3 visible values"):
        SARSOPSolver(timeout=1).solve(m)


def test_momdp_memory_cap_stops_with_valid_bounds():
    m = rocksample_momdp(5, 5)
    res = SARSOPSolver(timeout=10, memory_mb=0.5).solve(m)
    assert res.policy.meta["stop_reason"] == "memory" and not res.converged
    full = SARSOPSolver(timeout=2).solve(m)
    assert res.lower <= full.upper + 1e-6 and full.lower <= res.upper + 1e-6


# ------------------------------------------------------------------------------ policy files
def test_npz_records_visible_values_and_reads_version_1(tmp_path):
    from trimpomdp.artifacts import save_npz
    from trimpomdp.errors import FormatError

    pol = AlphaVectorPolicy(np.array([[1.0, 2.0], [3.0, 0.0], [0.5, 0.5]]), [0, 1, 2], {"solver": "t"},
                            visible=[1, 0, 1], n_visible=2)
    pol.save(tmp_path / "p.npz")
    back = AlphaVectorPolicy.load(tmp_path / "p.npz")
    assert back.visible.tolist() == [1, 0, 1] and back.n_visible == 2 and back.n_states == 4
    # visible 1 holds vectors 0 and 2: at b_y = (1, 0) vector 0 (1.0) beats vector 2 (0.5)
    assert back.action([0, 0, 1, 0]) == 0 and back.value([0, 0, 1, 0]) == 1.0
    assert back.action([1, 0, 0, 0]) == 1 and back.value([0, 1, 0, 0]) == 0.0
    save_npz(tmp_path / "v1.npz", {"alphas": np.ones((1, 3)), "actions": np.zeros(1, np.int64)}, {},
             "trimpomdp.alpha_policy", version=1)
    old = AlphaVectorPolicy.load(tmp_path / "v1.npz")
    assert old.n_visible == 1 and old.visible.tolist() == [0]
    save_npz(tmp_path / "bad.npz", {"alphas": np.ones((1, 3)), "actions": np.zeros(1, np.int64),
                                    "visible": np.array([2])}, {"n_visible": 2}, "trimpomdp.alpha_policy", 2)
    with pytest.raises(FormatError, match="bad.npz: array 'visible': vector 0 belongs to visible value 2, but "
                                          "n_visible is 2"):
        AlphaVectorPolicy.load(tmp_path / "bad.npz")


def test_policy_xml_round_trip_of_a_momdp_policy(tmp_path):
    from trimpomdp.policies.xml import read_policy_xml, write_policy_xml

    m = rocksample_momdp(4, 4)
    res = SARSOPSolver(timeout=1).solve(m)
    path = write_policy_xml(res.policy, m, tmp_path / "rs44.policy")
    text = path.read_text(encoding="latin-1")
    K = res.policy.alphas.shape[0]
    assert f'<AlphaVector vectorLength="16" numObsValue="17" numVectors="{K}">' in text
    back = read_policy_xml(path)
    order = np.argsort(res.policy.visible, kind="stable")  # written grouped by visible value, as pomdpsol does
    assert np.array_equal(back.alphas, res.policy.alphas[order])
    assert np.array_equal(back.visible, res.policy.visible[order]) and back.n_visible == 17
    assert np.array_equal(back.actions, res.policy.actions[order])
    back.check_model(m)
    rng = np.random.default_rng(0)
    for x in range(17):
        b = m.join(x, rng.dirichlet(np.ones(16)))
        assert back.value(b) == res.policy.value(b) and back.action(b) == res.policy.action(b)


APPL_MOMDP = """<?xml version="1.0" encoding="ISO-8859-1"?>
<Policy version="0.1" type="value" model="handmade" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" \
xsi:noNamespaceSchemaLocation="policyx.xsd">
<AlphaVector vectorLength="2" numObsValue="3" numVectors="4">
<Vector action="1" obsValue="0">5 -1 </Vector>
<Vector action="0" obsValue="0">1 2 </Vector>
<SparseVector action="2" obsValue="2"><Entry>1 7.5</Entry></SparseVector>
<Vector action="0" obsValue="1">0 0 </Vector>
</AlphaVector> </Policy>
"""


def test_handmade_appl_momdp_policy_is_read_correctly(tmp_path):
    from trimpomdp.policies.xml import read_policy_xml

    p = tmp_path / "hand.policy"
    p.write_text(APPL_MOMDP, encoding="latin-1")
    pol = read_policy_xml(p)
    assert pol.n_visible == 3 and pol.n_hidden == 2 and pol.n_states == 6
    assert pol.visible.tolist() == [0, 0, 2, 1] and pol.actions.tolist() == [1, 0, 2, 0]
    assert pol.alphas.tolist() == [[5, -1], [1, 2], [0, 7.5], [0, 0]]
    # visible 0: max(5 b0 - b1, b0 + 2 b1); visible 2: 7.5 b1; visible 1: 0
    assert pol.value([0.5, 0.5, 0, 0, 0, 0]) == 2.0 and pol.action([0.5, 0.5, 0, 0, 0, 0]) == 1
    assert pol.value([0.2, 0.8, 0, 0, 0, 0]) == pytest.approx(1.8) and pol.action([0.2, 0.8, 0, 0, 0, 0]) == 0
    assert pol.value([0, 0, 0, 0, 0.6, 0.4]) == pytest.approx(3.0) and pol.action([0, 0, 0, 0, 0.6, 0.4]) == 2
    assert pol.value([0, 0, 0.3, 0.7, 0, 0]) == 0.0
    # a mixture over visible values is worth the sum of its parts; it acts on its most probable part
    b = np.array([0.2, 0.2, 0, 0, 0.2, 0.4])
    assert pol.value(b) == pytest.approx(0.8 + 3.0) and pol.action(b) == 2
    # it runs on the flat form of a MOMDP of those sizes and acts on its beliefs
    m = random_momdp(5, 3, 2, 3, 2)
    pol.check_model(m)
    pol.check_model(m.flat)
    res = simulate_policy(m.flat, pol, episodes=200, seed=0)
    assert np.isfinite(res.mean)


def test_solve_cli_uses_the_momdp_solver_for_fully_observed_variables(tmp_path):
    from trimpomdp.cli.main import cli

    path = write_pomdpx(3, 2, tmp_path / "rs32.pomdpx")
    runner = CliRunner()
    out = runner.invoke(cli, ["solve", str(path), "--timeout", "2", "--progress", "none", "--json",
                              "-o", str(tmp_path / "m.npz")])
    assert out.exit_code == 0, out.output
    summary = json.loads(out.output.strip().splitlines()[-1])
    assert summary["momdp"] == {"visible": 10, "hidden": 4}
    assert "MOMDP, 10 visible x 4 hidden values" in out.output
    pol = AlphaVectorPolicy.load(tmp_path / "m.npz")
    assert pol.n_visible == 10 and pol.n_hidden == 4
    flat = runner.invoke(cli, ["solve", str(path), "--timeout", "2", "--progress", "none", "--json", "--flat",
                               "-o", str(tmp_path / "f.npz")])
    assert flat.exit_code == 0, flat.output
    fs = json.loads(flat.output.strip().splitlines()[-1])
    assert "momdp" not in fs and AlphaVectorPolicy.load(tmp_path / "f.npz").n_visible == 1
    assert fs["lower"] == pytest.approx(summary["lower"], abs=2e-3)
    # the MOMDP policy simulates on the same file (read flat)
    sim = runner.invoke(cli, ["simulate", str(path), str(tmp_path / "m.npz"), "--episodes", "500"])
    assert sim.exit_code == 0, sim.output


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), X=st.integers(1, 4), Y=st.integers(1, 5), A=st.integers(1, 3),
       Zo=st.integers(1, 3), x=st.integers(0, 3), full=st.booleans())
def test_momdp_expansion_gives_the_general_expansion(seed, X, Y, A, Zo, x, full):
    # the block-wise MOMDP expansion returns exactly the children, probabilities and rewards of the general one
    from trimpomdp.solvers.sarsop.tree import MIN_OBS_PROB, successors, successors_momdp

    m = random_momdp(seed, X, Y, A, Zo)
    run = Run(to_sparse(m), m, 1e-3, None, 1, False, 1e9, None)
    rng = np.random.default_rng(seed)
    x = x % X
    ys = np.arange(Y) if full else np.flatnonzero(rng.random(Y) < 0.6)
    if ys.size == 0:
        ys = np.array([Y - 1])
    bi = (x * Y + ys).astype(np.int64)
    bv = rng.dirichlet(np.ones(bi.size))
    want = successors(bi, bv, run.model, MIN_OBS_PROB, run.scratch)
    got = successors_momdp(bi, bv, run.model, MIN_OBS_PROB, run.scratch)
    for name, w, g in zip(("act_ptr", "obs", "prob", "child_ptr", "child_idx", "child_val", "reward"), want, got):
        assert w.shape == g.shape and np.allclose(w, g, rtol=1e-12, atol=0), name
    assert not run.scratch.pred.any() and not run.scratch.pz.any() and not run.scratch.cnt.any()


def test_belief_hashes_tell_beliefs_apart():
    from trimpomdp.solvers.sarsop.tree import belief_hashes, belief_key

    rng = np.random.default_rng(7)
    beliefs = []
    for _ in range(300):
        bi = np.sort(rng.choice(50, rng.integers(2, 7), replace=False)).astype(np.int64)
        beliefs.append((bi, rng.dirichlet(np.ones(bi.size))))
    bi0, bv0 = beliefs[0]
    beliefs.append((bi0, bv0 + np.r_[1e-9, np.zeros(bi0.size - 1)]))  # one value moved past the rounding
    beliefs.append((bi0 + 1, bv0))  # same values, other states
    cptr = np.r_[0, np.cumsum([b[0].size for b in beliefs])]
    keys = belief_hashes(cptr, np.concatenate([b[0] for b in beliefs]), np.concatenate([b[1] for b in beliefs]))
    distinct = {b[0].tobytes() + b[1].tobytes() for b in beliefs}
    assert len(set(keys.tolist())) == len(distinct) > 250
    # one belief alone hashes as it does among others, and the same values give the same key
    assert belief_key(bi0, bv0.copy()) == keys[0] == belief_key(bi0.copy(), bv0)
