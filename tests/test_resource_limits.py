"""Bounded resources: declared sizes, grids, point counts and episode counts are refused with a one-line
``TrimError`` before the memory or the time is spent, and legitimate large inputs still go through."""
from __future__ import annotations

import time
from pathlib import Path
import tracemalloc

import numpy as np
import pytest

from trimpomdp.cli.main import main
from trimpomdp.errors import FormatError, TrimError
from trimpomdp.pomdp import load_model
from trimpomdp.pomdp.cassandra import parse_pomdp
from trimpomdp.pomdp.pomdpx import parse_pomdpx
from trimpomdp.resource_limits import MODEL_MEMORY_ENV

MB = 1024 * 1024


def _header(states, actions=3, observations=2, body="T: * identity\nO: * uniform\n"):
    return (f"discount: 0.9\nvalues: reward\nstates: {states}\nactions: {actions}\n"
            f"observations: {observations}\n{body}")


def _refused_fast(fn, match, seconds=1.0, peak_mb=50):
    """fn() raises a FormatError matching ``match`` within ``seconds``, allocating under ``peak_mb``."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(FormatError, match=match) as ei:
            fn()
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < seconds, elapsed
    assert peak < peak_mb * MB, peak / MB
    assert "\n" not in str(ei.value)
    return ei.value


def _cli_one_error_line(capsys, argv, match, seconds=3.0):
    t0 = time.perf_counter()
    rc = main(argv)
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("Error: ") and err.count("\n") == 1, err
    assert match in err, err
    assert elapsed < seconds, elapsed
    return err


# ---------------------------------------------------------------------------------------------- .pomdp
def test_cassandra_1e8_states_header_refused_at_its_line():
    err = _refused_fast(lambda: parse_pomdp(_header(100_000_000), "big.pomdp"), "states: 100000000", 0.5)
    assert err.line == 3 and "GB of memory" in str(err) and MODEL_MEMORY_ENV in str(err)


def test_cassandra_1e7_states_refused_before_the_names_exist():
    # the actions / observations counts after 'states:' are read ahead, so the refusal comes at once
    _refused_fast(lambda: parse_pomdp(_header(10_000_000), "big.pomdp"), "10,000,000 states, 3 actions")


def test_cassandra_cli_info_refuses_huge_header(tmp_path, capsys):
    p = tmp_path / "big.pomdp"
    p.write_text(_header(100_000_000))
    err = _cli_one_error_line(capsys, ["info", str(p)], "would need about")
    assert "big.pomdp:3:" in err and MODEL_MEMORY_ENV in err


def test_cassandra_uniform_matrix_counted_before_it_is_built():
    # 20,000 states: a dense uniform T is 4e8 cells per action (the file itself is 6 lines)
    text = _header(20_000, body="T: * uniform\nO: * uniform\n")
    _refused_fast(lambda: parse_pomdp(text, "u.pomdp"), "T and O entries \\(1,200,000,000")


def test_cassandra_identity_stays_sparse():
    m = parse_pomdp(_header(50_000, actions=2, body="T: * identity\nO: * uniform\nR: * : * : * : * -1\n"))
    assert m.T[0].nnz == 50_000 and m.O[1].nnz == 100_000 and np.all(m.R == -1)


def test_cassandra_rewards_over_s_prime_and_o_counted_first():
    # T and O are uniform (1e6 cells per action, fine); a reward depending on s' and o would enumerate
    # S x S x Z = 1e9 triples per action
    text = _header(1000, actions=1, observations=1000, body="T: * uniform\nO: * uniform\nR: * : * : 3 : 7 5\n")
    _refused_fast(lambda: parse_pomdp(text, "r.pomdp"), "rewards that depend on s' or o", 10, peak_mb=800)


def test_memory_limit_override(monkeypatch):
    text = _header(20_000, actions=2)
    monkeypatch.setenv(MODEL_MEMORY_ENV, "1")
    with pytest.raises(FormatError, match="over the 1 MB limit"):
        parse_pomdp(text)
    assert parse_pomdp(text, max_memory_mb=100).n_states == 20_000  # the parameter wins
    monkeypatch.setenv(MODEL_MEMORY_ENV, "lots")
    with pytest.raises(TrimError, match=MODEL_MEMORY_ENV):
        parse_pomdp(text)
    monkeypatch.delenv(MODEL_MEMORY_ENV)
    with pytest.raises(TrimError, match="max_memory_mb"):
        parse_pomdp(text, max_memory_mb=-5)


# ---------------------------------------------------------------------------------------------- .pomdpx
def _pomdpx(state_vars: str, obs="<ObsVar vname='z'><ValueEnum>a b</ValueEnum></ObsVar>") -> str:
    return f"""<?xml version="1.0"?><pomdpx version="1.0"><Discount>0.9</Discount><Variable>
{state_vars}{obs}<ActionVar vname="act"><ValueEnum>go stay</ValueEnum></ActionVar><RewardVar vname="r"/>
</Variable></pomdpx>"""


def test_pomdpx_1e8_numvalues_refused():
    doc = _pomdpx('<StateVar vnamePrev="s0" vnameCurr="s1"><NumValues>100000000</NumValues></StateVar>')
    err = _refused_fast(lambda: parse_pomdpx(doc, "big.pomdpx"), "NumValues> 100000000", 0.5)
    assert err.line == 2


def test_pomdpx_product_of_many_variables_refused():
    # 64 binary variables: 2^64 joint states, which also overflows int64 arithmetic
    doc = _pomdpx("".join(f'<StateVar vnamePrev="v{k}" vnameCurr="w{k}"><ValueEnum>0 1</ValueEnum></StateVar>'
                          for k in range(64)))
    _refused_fast(lambda: parse_pomdpx(doc, "wide.pomdpx"), "18,446,744,073,709,551,616 joint states", 0.5)


def test_pomdpx_big_conditional_table_refused_before_allocation():
    # 1e6 joint states are fine, but a table over both copies of the two variables has 1e12 cells
    vars_ = "".join(f'<StateVar vnamePrev="v{k}" vnameCurr="w{k}"><NumValues>1000</NumValues></StateVar>'
                    for k in range(2))
    doc = _pomdpx(vars_).replace("</Variable>", """</Variable><InitialStateBelief><CondProb>
<Var>v0 v1 w0 w1</Var><Parent>null</Parent><Parameter type="TBL">
<Entry><Instance>- - - -</Instance><ProbTable>uniform</ProbTable></Entry>
</Parameter></CondProb></InitialStateBelief>""")
    err = _refused_fast(lambda: parse_pomdpx(doc, "t.pomdpx"), "table over \\(v0 v1 w0 w1\\) of "
                        "1,000,000,000,000 cells", 1.0, peak_mb=200)
    assert err.line == 3  # the <CondProb>


def rocksample_pomdpx(n: int, k: int, seed: int = 0) -> str:
    """RockSample[n, k] as a factored .pomdpx in the layout of SARSOP's RockSample files (the robot's
    position is fully observed and has an exit value 'st': (n * n + 1) * 2^k joint states)."""
    rng = np.random.default_rng(seed)
    cells = [(x, y) for x in range(n) for y in range(n)]
    rocks = [cells[i] for i in rng.choice(len(cells), size=k, replace=False)]
    pos = [f"s{x}_{y}" for x, y in cells] + ["st"]
    acts = ["amn", "ame", "ams", "amw"] + [f"ac{i}" for i in range(k)] + ["as"]
    rk = [f"rock{i}" for i in range(k)]
    stars = " ".join(["*"] * k)

    def cp(var, parents, entries, tag="ProbTable"):
        body = "".join(f"<Entry><Instance>{i}</Instance><{tag}>{v}</{tag}></Entry>" for i, v in entries)
        kind = "Func" if tag == "ValueTable" else "CondProb"
        return f'<{kind}><Var>{var}</Var><Parent>{parents}</Parent><Parameter type="TBL">{body}</Parameter></{kind}>'

    out = ['<?xml version="1.0"?><pomdpx version="1.0"><Discount>0.95</Discount><Variable>',
           f'<StateVar vnamePrev="robot_0" vnameCurr="robot_1" fullyObs="true"><ValueEnum>{" ".join(pos)}'
           "</ValueEnum></StateVar>"]
    out += [f'<StateVar vnamePrev="{r}_0" vnameCurr="{r}_1"><ValueEnum>bad good</ValueEnum></StateVar>' for r in rk]
    out += ['<ObsVar vname="obs"><ValueEnum>ogood obad</ValueEnum></ObsVar>',
            f'<ActionVar vname="act"><ValueEnum>{" ".join(acts)}</ValueEnum></ActionVar>',
            '<RewardVar vname="reward"/></Variable><InitialStateBelief>']
    start = ["0"] * len(pos)
    start[pos.index(f"s0_{n // 2}")] = "1"
    out.append(cp("robot_0", "null", [("-", " ".join(start))]))
    out += [cp(f"{r}_0", "null", [("-", "uniform")]) for r in rk]
    out.append("</InitialStateBelief><StateTransitionFunction>")
    moves = {"amn": (0, 1), "ame": (1, 0), "ams": (0, -1), "amw": (-1, 0)}
    ent = []
    for (x, y), p in zip(cells, pos):
        for a in acts:
            nxt = p
            if a in moves:
                nx, ny = x + moves[a][0], y + moves[a][1]
                nxt = "st" if nx >= n else (f"s{nx}_{ny}" if nx >= 0 and 0 <= ny < n else p)
            ent.append((f"{a} {p} {nxt}", "1.0"))
    ent += [(f"{a} st st", "1.0") for a in acts]
    out.append(cp("robot_1", "act robot_0", ent))
    for i, r in enumerate(rk):
        x, y = rocks[i]
        out.append(cp(f"{r}_1", f"act robot_0 {r}_0", [("* * - -", "identity"), (f"as s{x}_{y} * -", "1 0")]))
    out.append("</StateTransitionFunction><ObsFunction>")
    ent = [(f"* * {stars} -", "0 1")]
    for i, (x, y) in enumerate(rocks):
        inst = " ".join("-" if j == i else "*" for j in range(k))
        for (cx, cy), p in zip(cells, pos):
            eff = 0.5 + 0.5 * 2 ** (-np.hypot(cx - x, cy - y) / 20)
            ent.append((f"ac{i} {p} {inst} -", f"{1 - eff:.6f} {eff:.6f} {eff:.6f} {1 - eff:.6f}"))
    out.append(cp("obs", "act robot_1 " + " ".join(f"{r}_1" for r in rk), ent))
    out.append("</ObsFunction><RewardFunction>")
    ent = []
    for (x, y), p in zip(cells, pos):
        if x == 0:
            ent.append((f"amw {p} {stars}", "-100"))
        if x == n - 1:
            ent.append((f"ame {p} {stars}", "10"))
        if (x, y) in rocks:
            i = rocks.index((x, y))
            for val, rw in (("bad", -10), ("good", 10)):
                ent.append((f"as {p} " + " ".join(val if j == i else "*" for j in range(k)), str(rw)))
        else:
            ent.append((f"as {p} {stars}", "-100"))
    out.append(cp("reward", "act robot_0 " + " ".join(f"{r}_0" for r in rk), ent, "ValueTable"))
    out.append("</RewardFunction></pomdpx>")
    return "\n".join(out)


@pytest.mark.slow  # about 5 s: the largest model the default limit must keep accepting
def test_rocksample_11_11_pomdpx_loads_under_the_default_limit(tmp_path, monkeypatch):
    monkeypatch.delenv(MODEL_MEMORY_ENV, raising=False)
    p = tmp_path / "rs11.pomdpx"
    p.write_text(rocksample_pomdpx(11, 11))
    m = load_model(p)
    assert (m.n_states, m.n_actions, m.n_observations) == (249_856, 16, 2 * 122)
    # moves and checks are deterministic: one successor per state; sampling too
    assert all(t.nnz == m.n_states for t in m.T)
    # and a tight limit refuses the same file with the estimate in the message
    with pytest.raises(FormatError, match="249,856 joint states, 16 actions"):
        parse_pomdpx(p.read_text(), str(p), max_memory_mb=50)


def test_shared_rocksample_7_8_loads(pomdp_dir, monkeypatch):
    monkeypatch.delenv(MODEL_MEMORY_ENV, raising=False)
    m = load_model(pomdp_dir / "RockSample_7_8.pomdpx")
    assert m.n_states == 12_800 and m.n_actions == 13


# ---------------------------------------------------------------------------------------------- observation grids
def test_fit_obs_tiny_bin_size_refused(data_dir, tmp_path, capsys):
    out = tmp_path / "o.npz"
    err = _cli_one_error_line(capsys, ["fit-obs", str(data_dir / "prm_obs_processbench_math.npz"), "--bin-size",
                                       "0.0001", "--bandwidth", "scott", "-o", str(out)],
                              "100,000,000 bins in 2-D, over the limit of 10,000", seconds=5)
    assert "bin size >= 0.01" in err and not out.exists()


def test_grid_limits_in_the_library():
    from trimpomdp.errors import ModelError
    from trimpomdp.observation_models.discretize import MAX_WORK, bin_centers, grid_masses
    from trimpomdp.observation_models.kde import ReflectedKDE

    rng = np.random.default_rng(0)
    m = ReflectedKDE(bandwidth=0.1).fit(rng.uniform(size=(20, 2)), ["a"] * 10 + ["b"] * 10)
    t0 = time.perf_counter()
    for call in (lambda: m.discretize(1e-4), lambda: m.bin_index([0.5, 0.5], 1e-4), lambda: bin_centers(1e-3, 2)):
        with pytest.raises(ModelError, match="over the limit of 10,000"):
            call()
    assert bin_centers(1e-4, 1).shape == (10_000, 1)  # 10,000 bins are fine in 1-D
    # many kernel copies on the finest allowed grid: refused before the integration starts
    C = rng.uniform(size=(MAX_WORK // 10_201 + 1, 2))
    with pytest.raises(ModelError, match="integrals, over the limit"):
        grid_masses(C, np.ones(len(C)), np.eye(2) * 0.01, 0.01)
    assert time.perf_counter() - t0 < 2


def test_chunked_integration_equals_one_pass(monkeypatch):
    from trimpomdp.observation_models import discretize as D

    rng = np.random.default_rng(1)
    C = rng.uniform(-0.1, 1.1, size=(300, 2))
    sign = np.where(rng.random(300) < 0.5, -1.0, 1.0)
    H = np.array([[0.01, 0.004], [0.004, 0.02]])
    whole = D.grid_masses(C, sign, H, 0.1)
    monkeypatch.setattr(D, "_CHUNK_WORK", 1000)  # 8 copies per chunk
    seen = []
    chunked = D.grid_masses(C, sign, H, 0.1, progress=seen.append)
    assert np.allclose(chunked, whole, rtol=1e-13, atol=1e-15) and sum(seen) == 300


def test_trim_model_refuses_oversized_grids(data_dir, tmp_path, capsys):
    from trimpomdp.observation_models.io import save_obs_model
    from trimpomdp.observation_models.kde import ReflectedKDE

    rng = np.random.default_rng(0)
    labels = ["correct", "fresh_error", "derailed"] * 10
    fitted = tmp_path / "fitted.npz"  # a fitted model whose stored grid is 1e-4 (1e8 bins in 2-D)
    save_obs_model(ReflectedKDE(bandwidth=0.1).fit(rng.uniform(size=(30, 2)), labels), fitted, bin_size=1e-4)
    m = 200  # a bins table of 200 x 200 bins
    c = (np.arange(m) + 0.5) / m
    grid = np.stack([g.ravel() for g in np.meshgrid(c, c, indexing="ij")], axis=1)
    table = tmp_path / "table.npz"
    np.savez(table, **{f"{s}_centers": grid for s in ("correct", "fresh_error", "derailed")},
             **{f"{s}_probs": np.full(m * m, 1 / m**2) for s in ("correct", "fresh_error", "derailed")})
    base = ["trim-model", "--step-stats", str(data_dir / "step_stats_math_train.npz"), "--weak",
            "qwen2.5-1.5b-instruct", "--strong", "qwen2.5-7b-instruct", "-o", str(tmp_path / "t.json"), "--obs"]
    err = _cli_one_error_line(capsys, base + [str(fitted)], "100,000,000 bins", seconds=5)
    assert "fitted.npz" in err
    err = _cli_one_error_line(capsys, base + [str(table)], "40,000 bins in 2-D", seconds=5)
    assert "table.npz" in err and not (tmp_path / "t.json").exists()


# ---------------------------------------------------------------------------------------------- point counts
def _points_file(path, n, seed=0):
    rng = np.random.default_rng(seed)
    np.savez(path, correct=rng.beta(5, 2, (n // 2, 2)), fresh_error=rng.beta(2, 3, (n // 4, 2)),
             derailed=rng.beta(2, 5, (n - n // 2 - n // 4, 2)))
    return path


def test_cv_bandwidth_refused_above_its_point_limit(tmp_path, capsys):
    from trimpomdp.observation_models.kde import MAX_CV_POINTS

    p = _points_file(tmp_path / "many.npz", 2 * MAX_CV_POINTS + 4)
    _cli_one_error_line(capsys, ["fit-obs", str(p), "--bandwidth", "cv", "--folds", "0", "-o",
                                 str(tmp_path / "o.npz")],
                        f"over the limit of {MAX_CV_POINTS:,} for the 'cv' bandwidth", seconds=5)


def test_fit_obs_diagnostics_stay_linear_in_the_points(tmp_path, capsys):
    # 40,000 points: the old in-sample AUC evaluated every density at every point (1.6e9 kernel pairs)
    import json

    p = _points_file(tmp_path / "pts.npz", 40_000)
    t0 = time.perf_counter()
    rc = main(["fit-obs", str(p), "--folds", "0", "--bandwidth", "scott", "--diagnostic-points", "600", "--json",
               "-o", str(tmp_path / "o.npz")])
    elapsed = time.perf_counter() - t0
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["diagnostics"] == {"skipped": False, "points": 600, "sampled": True}
    assert all(0.6 < r["auc"] <= 1 for r in summary["states"].values())
    assert elapsed < 30, elapsed


# ---------------------------------------------------------------------------------------------- episodes
def test_simulate_routing_episode_limit(data_dir, capsys):
    from trimpomdp.resource_limits import MAX_EPISODES
    from trimpomdp.routing.simulator import simulate

    spec = str(Path(__file__).resolve().parents[1] / "data" / "trim_math_plain.json")
    err = _cli_one_error_line(capsys, ["simulate-routing", spec, "--points",
                                       str(data_dir / "prm_obs_processbench_math.npz"), "--episodes",
                                       "1000000000"], f"over the limit of {MAX_EPISODES:,}")
    assert "--episodes" in err
    with pytest.raises(TrimError, match="over the limit"):
        simulate(None, None, {}, MAX_EPISODES + 1)  # refused before anything is touched


def test_simulation_in_chunks_matches_one_pass(data_dir, monkeypatch):
    from trimpomdp.routing import TrimModel, load_policy
    from trimpomdp.routing import simulator as S
    from trimpomdp.routing.spec import load_observation_points

    tm = TrimModel.load(Path(__file__).resolve().parents[1] / "data" / "trim_math_plain.json")
    pts = load_observation_points(data_dir / "prm_obs_processbench_math.npz")
    pol = load_policy("threshold:0.5", tm)
    one = S.simulate(tm, pol, pts, 3000, 5)
    assert S.simulate_summary(tm, pol, pts, 3000, 5) == one.summary()
    monkeypatch.setattr(S, "CHUNK", 1000)
    chunked = S.simulate(tm, pol, pts, 3000, 5)
    first = S.simulate(tm, pol, pts, 1000, 5)  # chunk 0 draws exactly what a 1,000-episode run draws
    assert np.array_equal(chunked.correct[:1000], first.correct)
    assert np.array_equal(chunked.strong_tokens[:1000], first.strong_tokens)
    running = S.simulate_summary(tm, pol, pts, 3000, 5)
    whole = chunked.summary()
    assert running.keys() == whole.keys()
    assert running.pop("policy") == whole.pop("policy") and running.pop("mode") == whole.pop("mode")
    for k in whole:
        assert running[k] == pytest.approx(whole[k], rel=1e-12), k


def test_load_model_passes_the_limit_on(tmp_path, pomdp_dir):
    p = tmp_path / "m.pomdp"
    p.write_text(_header(20_000, actions=2))
    with pytest.raises(FormatError, match="over the 1 MB limit"):
        load_model(p, max_memory_mb=1)
    assert load_model(p, max_memory_mb=100).n_states == 20_000
    with pytest.raises(FormatError, match="over the 1 MB limit"):
        load_model(pomdp_dir / "RockSample_7_8.pomdpx", max_memory_mb=1)
