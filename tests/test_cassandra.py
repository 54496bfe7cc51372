"""Cassandra .pomdp reader/writer: every shared file, hand-checked values, the whole grammar against a
naive dense reference, exact round trips, and one-line errors that name the line."""
from __future__ import annotations

import time

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trimpomdp.errors import FormatError, ModelError
from trimpomdp.pomdp import POMDP, load_model, read_pomdp, save_model, write_pomdp
from trimpomdp.pomdp.cassandra import format_pomdp, parse_pomdp

#: file -> (states, actions, observations, discount)
SHARED = {
    "tiger.95.POMDP": (2, 3, 2, 0.95),
    "4x3.95.POMDP": (11, 4, 6, 0.95),
    "cheese.95.POMDP": (11, 4, 7, 0.95),
    "shuttle.95.POMDP": (8, 3, 5, 0.95),
    "parr95.95.POMDP": (7, 3, 6, 0.95),
    "concert.POMDP": (2, 3, 2, 1.0),
    "ejs1.POMDP": (3, 4, 2, 1.0),
    "ejs2.POMDP": (2, 2, 2, 1.0),
    "ejs4.POMDP": (3, 2, 2, 1.0),
    "Hallway.pomdp": (60, 5, 21, 0.95),
    "Hallway2.pomdp": (92, 5, 17, 0.95),
    "TagAvoid.pomdp": (870, 5, 30, 0.95),
}


def _same(m1: POMDP, m2: POMDP) -> bool:
    """Bit-for-bit equality of two models' arrays, names, discount and start."""
    return (m1.states == m2.states and m1.actions == m2.actions and m1.observations == m2.observations
            and m1.discount == m2.discount and np.array_equal(m1.initial_belief, m2.initial_belief)
            and np.array_equal(m1.R, m2.R)
            and all((x != y).nnz == 0 for x, y in zip(m1.T + m1.O, m2.T + m2.O)))


@pytest.fixture(scope="module")
def shared_models(pomdp_dir):
    return {f: load_model(pomdp_dir / f) for f in SHARED}


# ---------------------------------------------------------------------------- shared files
def test_every_shared_pomdp_file_is_in_the_table(pomdp_dir):
    on_disk = {p.name for p in pomdp_dir.iterdir() if p.suffix.lower() == ".pomdp"}
    assert on_disk == set(SHARED)


@pytest.mark.parametrize("fname", sorted(SHARED))
def test_shared_file_sizes_and_exact_rows(shared_models, fname):
    m = shared_models[fname]
    S, A, Z, disc = SHARED[fname]
    assert (m.n_states, m.n_actions, m.n_observations, m.discount) == (S, A, Z, disc)
    assert m.validation_problems() == []
    for mat in m.T + m.O:  # renormalised: rows are stochastic up to float rounding
        assert np.allclose(np.asarray(mat.sum(axis=1)).ravel(), 1.0, atol=1e-14, rtol=0)
    assert abs(m.initial_belief.sum() - 1) < 1e-14


@pytest.mark.parametrize("fname", sorted(SHARED))
def test_shared_file_round_trip_is_exact(shared_models, fname, tmp_path):
    m = shared_models[fname]
    path = write_pomdp(m, tmp_path / "x.pomdp")
    assert _same(read_pomdp(path), m)


@pytest.mark.parametrize("fname", ["TagAvoid.pomdp", "Hallway.pomdp", "parr95.95.POMDP", "ejs2.POMDP"])
def test_bulk_and_entry_by_entry_parsing_agree(pomdp_dir, shared_models, fname):
    text = (pomdp_dir / fname).read_text(encoding="latin-1")
    assert _same(parse_pomdp(text, bulk=False, name=shared_models[fname].name), shared_models[fname])


def test_tiger_hand_checked(shared_models):
    m = shared_models["tiger.95.POMDP"]
    assert m.states == ("tiger-left", "tiger-right")
    assert m.actions == ("listen", "open-left", "open-right")
    L, OL, OR = 0, 1, 2
    assert np.array_equal(m.T[L].toarray(), np.eye(2))
    assert np.array_equal(m.T[OL].toarray(), np.full((2, 2), 0.5))
    assert m.O[L][0, 0] == 0.85 and m.O[L][0, 1] == 0.15 and m.O[L][1, 1] == 0.85
    assert np.array_equal(m.O[OR].toarray(), np.full((2, 2), 0.5))
    assert m.R[0, OL] == -100 and m.R[1, OL] == 10 and m.R[0, OR] == 10 and m.R[1, OR] == -100
    assert np.array_equal(m.R[:, L], [-1, -1])
    assert m.discount == 0.95
    assert np.array_equal(m.initial_belief, [0.5, 0.5])


def test_rewards_on_next_state_are_folded_over_T(shared_models):
    m = shared_models["ejs1.POMDP"]  # R: Manufacture : * : <s'> : *  depends on the next state
    man, exa = m.actions.index("Manufacture"), m.actions.index("Examine")
    assert m.R[0, man] == pytest.approx(0.81 * 1.0 + 0.18 * 0.5 + 0.01 * 0.25)
    assert m.R[1, man] == pytest.approx(0.9 * 0.5 + 0.1 * 0.25)
    assert m.R[2, man] == pytest.approx(0.25)
    assert m.R[0, exa] == pytest.approx(0.81 * 0.75 + 0.18 * 0.25)
    assert np.array_equal(m.R[:, m.actions.index("Inspect")], [-0.5, -1.5, -2.5])


def test_hallway_goal_reward_is_probability_of_reaching_goal(shared_models):
    m = shared_models["Hallway.pomdp"]  # R: * : * : <goal 56..59> : * 1  (s'-dependent)
    expected = np.stack([m.T[a][:, 56:].sum(axis=1).A1 for a in range(m.n_actions)], axis=1)
    assert expected.max() > 0 and np.allclose(m.R, expected, rtol=0, atol=1e-15)


def test_later_entries_overwrite_earlier_ones(shared_models):
    m = shared_models["ejs2.POMDP"]  # R : 0 : 0 : * : * -4 then R : 0 : 0 : * : * 0
    assert m.R[0, 0] == 0 and m.R[1, 0] == 4 and m.R[1, 1] == 3 and m.R[0, 1] == 0


def test_start_include_and_missing_discount(shared_models):
    parr = shared_models["parr95.95.POMDP"]
    assert parr.initial_belief[parr.states.index("I")] == 1.0 and parr.initial_belief.sum() == 1.0
    assert shared_models["ejs4.POMDP"].discount == 1.0  # no 'discount:' line: pomdp-solve's default


def test_load_model_dispatch_and_save(shared_models, tmp_path, pomdp_dir):
    with pytest.raises(FormatError, match="unknown model file type"):
        load_model(tmp_path / "x.txt")
    with pytest.raises(FormatError, match="file not found"):
        load_model(tmp_path / "missing.pomdp")
    with pytest.raises(FormatError, match="only .pomdp"):
        save_model(shared_models["ejs2.POMDP"], tmp_path / "x.pomdpx")
    p = save_model(shared_models["concert.POMDP"], tmp_path / "c.POMDP")
    assert _same(load_model(p), shared_models["concert.POMDP"])


# ---------------------------------------------------------------------------- grammar
GRAMMAR = """# every form of the spec
discount: .9   values: cost
states: a b c
actions: go
  stay
observations: 2
start include: a c
T: go
identity
T: go : b
uniform
T: stay : * : * 0.0
T: stay : * : a 1.
T: stay : c reset
O: * : * : 0 .5
O: * : * : 1 5e-1
O: stay : c
1 -0
R: go : * : * : * 1e0
R: stay : a : b : 1 2
R: stay : b : a
3 4
R: stay : c
0 0
0 0
8 8
"""


def test_whole_grammar():
    m = parse_pomdp(GRAMMAR)
    assert m.states == ("a", "b", "c") and m.actions == ("go", "stay") and m.observations == ("0", "1")
    assert m.discount == 0.9
    assert np.array_equal(m.initial_belief, [0.5, 0, 0.5])
    assert np.allclose(m.T[0].toarray(), [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3], [0, 0, 1]])
    # 'reset' sends c to the start distribution
    assert np.allclose(m.T[1].toarray(), [[1, 0, 0], [1, 0, 0], [0.5, 0, 0.5]])
    assert np.allclose(m.O[0].toarray(), 0.5)
    assert np.allclose(m.O[1].toarray(), [[0.5, 0.5], [0.5, 0.5], [1, 0]])
    # values: cost negates; stay from a goes to a (r=0 there), from b to a seeing 0/1 half each: (3+4)/2,
    # from c to a (p .5) or c (p .5, sees 0 surely: reward 8)
    assert np.allclose(m.R, -np.array([[1, 0], [1, 3.5], [1, 4]]))


def test_start_forms():
    base = "discount: 0.5\nstates: x y z\nactions: 1\nobservations: 1\n"
    tail = "T: * identity\nO: * uniform\n"
    assert np.array_equal(parse_pomdp(base + "start: y\n" + tail).initial_belief, [0, 1, 0])
    assert np.array_equal(parse_pomdp(base + "start: 2\n" + tail).initial_belief, [0, 0, 1])
    assert np.allclose(parse_pomdp(base + "start: uniform\n" + tail).initial_belief, 1 / 3)
    assert np.allclose(parse_pomdp(base + "start exclude: x\n" + tail).initial_belief, [0, 0.5, 0.5])
    assert np.allclose(parse_pomdp(base + "start:\n0.2\n0.3 0.5\n" + tail).initial_belief, [0.2, 0.3, 0.5])
    assert np.allclose(parse_pomdp(base + tail).initial_belief, 1 / 3)  # no start: uniform


def test_rows_within_tolerance_are_renormalised():
    m = parse_pomdp("discount: 0.9\nstates: 2\nactions: 1\nobservations: 1\n"
                    "start: 0.33333 0.66667\nT: 0\n0.33333 0.66666\n0.5 0.5\nO: 0 uniform\n")
    assert np.isclose(m.T[0].sum(axis=1), 1, rtol=0, atol=1e-15).all()
    assert m.T[0][0, 0] == pytest.approx(0.33333 / 0.99999)


# ---------------------------------------------------------------------------- errors
HEAD = "discount: 0.9\nstates: s0 s1\nactions: a\nobservations: o0 o1\n"
OK_TAIL = "T: a identity\nO: a uniform\n"

ERRORS = [
    # (text, line, message fragment)
    (HEAD + "T: a : s0 : s9 1\n" + OK_TAIL, 5, "unknown state 's9'"),
    (HEAD + "T: b identity\n", 5, "unknown action 'b'"),
    (HEAD + "T: a : 0 : 2 1\n", 5, "state index 2 out of range"),
    (HEAD + "O: a : s0 : o7 1\n", 5, "unknown observation 'o7'"),
    (HEAD + "T: a\n1 0\n0 x\nO: a uniform\n", 7, "got 'x'"),
    (HEAD + "T: a\n1 0\n0 1 0\nO: a uniform\n", 7, "too many values"),
    (HEAD + "T: a\n1 0\n0\n", 7, "file ends early"),
    (HEAD + "T: a : s0 :\n", 5, "file ends early"),
    (HEAD + "T: a : s0 : s1 1.2\n" + OK_TAIL, 5, "not a probability"),
    (HEAD + "T: a : s0 : s1 -0.1\n" + OK_TAIL, 5, "not a probability"),
    (HEAD + "O: a\n0.5 0.5\n0.5 -0.5\n" + OK_TAIL, 7, "not a probability"),
    (HEAD + "R: a : s0 : * : * 1..5\n" + OK_TAIL, 5, "expected a number"),
    (HEAD + "T: a\n0.5 0.4\n0 1\nO: a uniform\n", 5, "row 's0' sums to 0.9"),
    (HEAD + OK_TAIL + "O: a : s1\n0.2 0.2\n", 7, "row 's1' sums to 0.4"),
    (HEAD + "start: 0.5 0.6\n" + OK_TAIL, 5, "sum to 1.1"),
    ("discount: 0.9\nT: a identity\n", 2, "'states:' must be declared before T:"),
    ("discount: 0.9\nstates: a a\n", 2, "duplicate name 'a'"),
    (HEAD + "values: money\n", 5, "values must be 'reward' or 'cost'"),
    (HEAD + OK_TAIL + "junk here\n", 7, "expected a section"),
    (HEAD + "T: a : s0 : s1 0.5 0.5\n", 5, "expected a section"),
    (HEAD.replace("0.9", "oops"), 1, "expected a number for discount"),
]


@pytest.mark.parametrize("bulk", [True, False])
@pytest.mark.parametrize("text,line,fragment", ERRORS)
def test_errors_name_file_and_line(text, line, fragment, bulk):
    with pytest.raises(FormatError) as ei:
        parse_pomdp(text, path="m.pomdp", bulk=bulk)
    msg = str(ei.value)
    assert msg.startswith(f"m.pomdp:{line}: "), msg
    assert fragment in msg
    assert "\n" not in msg


def test_empty_and_unreadable_files(tmp_path):
    with pytest.raises(FormatError, match="empty file"):
        parse_pomdp("# nothing\n")
    with pytest.raises(FormatError, match="cannot read"):
        read_pomdp(tmp_path)  # a directory


def test_writer_refuses_unwritable_names():
    m = POMDP.from_arrays([np.eye(2)], [np.ones((2, 1))], np.zeros((2, 1)), 0.9, states=["a b", "c"])
    with pytest.raises(ModelError, match="cannot be written"):
        format_pomdp(m)


# ---------------------------------------------------------------------------- properties
@st.composite
def sparse_pomdps(draw):
    """Random valid POMDPs with random sparsity and arbitrary float probabilities."""
    S = draw(st.integers(1, 5))
    A = draw(st.integers(1, 3))
    Z = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)

    def stochastic(rows, cols):
        m = rng.random((rows, cols)) * (rng.random((rows, cols)) < draw(st.floats(0.2, 1.0)))
        m[np.arange(rows), rng.integers(0, cols, rows)] += rng.random(rows) + 0.1
        return m / m.sum(axis=1, keepdims=True)

    T = [stochastic(S, S) for _ in range(A)]
    O = [stochastic(S, Z) for _ in range(A)]
    R = rng.normal(size=(S, A)) * (rng.random((S, A)) < 0.7) * 10.0 ** rng.integers(-3, 4)
    b0 = stochastic(1, S)[0]
    named = draw(st.booleans())
    names = (lambda p, n: [f"{p}{i}" for i in range(n)] if named else None)
    return POMDP.from_arrays(T, O, R, draw(st.floats(0.01, 1.0)), b0, names("s", S), names("act-", A),
                             names("o.", Z))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sparse_pomdps())
def test_random_models_survive_write_read(m):
    from trimpomdp.pomdp.cassandra import normalize_rows, normalize_vector

    # what the reader returns for m is m with exactly renormalised rows; written once, read back exactly
    once = parse_pomdp(format_pomdp(m), name=m.name)
    twice = parse_pomdp(format_pomdp(once), name=m.name)
    assert _same(once, twice)
    for x, y in zip(m.T + m.O, once.T + once.O):
        assert np.allclose(x.toarray(), y.toarray(), rtol=1e-15, atol=0)
        assert (normalize_rows(x) != y).nnz == 0
    assert np.array_equal(once.R, m.R) and np.array_equal(once.initial_belief, normalize_vector(m.initial_belief))


@st.composite
def entry_scripts(draw):
    """A random sequence of T/O/R entries of every form (wildcards, names or indices), as text, together
    with the dense arrays a naive reading of the spec gives (later entries overwrite earlier ones)."""
    S, A, Z = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    T, O, r = np.zeros((A, S, S)), np.zeros((A, S, Z)), np.zeros((A, S, S, Z))
    num = st.sampled_from([0.0, 0.25, 0.5, 1.0, 0.125])
    rew = st.sampled_from([-2.0, 0.0, 1.5, 3.0])
    if draw(st.booleans()):  # start from stochastic matrices so that rewards are checked more often
        T[:], O[:] = 1.0 / S, 1.0 / Z
        r_pre = "T: * uniform\nO: * uniform\n"
    else:
        r_pre = ""
    lines = [f"discount: 0.9\nstates: {' '.join(f's{i}' for i in range(S))}\nactions: {A}\n"
             f"observations: {' '.join(f'z{i}' for i in range(Z))}\n{r_pre}"]

    def ref(prefix, n):  # (token, slice) for an element or '*'
        k = draw(st.integers(-1, n - 1))
        if k < 0:
            return "*", slice(None)
        return (f"{prefix}{k}" if prefix and draw(st.booleans()) else str(k)), k

    def fmt(vals):
        return " ".join(repr(float(v)) for v in np.ravel(vals))

    for _ in range(draw(st.integers(0, 14))):
        kind = draw(st.sampled_from(["T4", "T3", "T2", "O4", "O3", "O2", "R5", "R4", "R3"]))
        at, ai = ref("", A)
        st_, si = ref("s", S)
        if kind[0] in "TO":
            arr, C, cp = (T, S, "s") if kind[0] == "T" else (O, Z, "z")
            if kind[1] == "4":
                ct, ci = ref(cp, C)
                v = draw(num)
                lines.append(f"{kind[0]}: {at} : {st_} : {ct} {fmt([v])}")
                arr[ai, si, ci] = v
            elif kind[1] == "3":
                if draw(st.booleans()):
                    lines.append(f"{kind[0]}: {at} : {st_}\nuniform")
                    arr[ai, si, :] = 1.0 / C
                else:
                    row = np.array(draw(st.lists(num, min_size=C, max_size=C)))
                    lines.append(f"{kind[0]}: {at} : {st_}\n{fmt(row)}")
                    arr[ai, si, :] = row
            else:
                form = draw(st.sampled_from(["uniform", "identity", "matrix"]))
                if form == "identity" and C == S:
                    lines.append(f"{kind[0]}: {at}\nidentity")
                    arr[ai] = np.eye(S)
                elif form == "uniform":
                    lines.append(f"{kind[0]}: {at} uniform")
                    arr[ai] = 1.0 / C
                else:
                    mat = np.array(draw(st.lists(num, min_size=S * C, max_size=S * C))).reshape(S, C)
                    lines.append(f"{kind[0]}:{at}\n{fmt(mat)}")
                    arr[ai] = mat
        else:
            if kind == "R5":
                t2, i2 = ref("s", S)
                to, io = ref("z", Z)
                v = draw(rew)
                lines.append(f"R: {at} : {st_} : {t2} : {to} {fmt([v])}")
                r[ai, si, i2, io] = v
            elif kind == "R4":
                t2, i2 = ref("s", S)
                row = np.array(draw(st.lists(rew, min_size=Z, max_size=Z)))
                lines.append(f"R: {at} : {st_} : {t2}\n{fmt(row)}")
                r[ai, si, i2, :] = row
            else:
                mat = np.array(draw(st.lists(rew, min_size=S * Z, max_size=S * Z))).reshape(S, Z)
                lines.append(f"R: {at} : {st_}\n{fmt(mat)}")
                r[ai, si, :, :] = mat
    return "\n".join(lines) + "\n", T, O, r


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entry_scripts(), st.booleans())
def test_entries_match_a_naive_dense_reading(script, bulk):
    text, T, O, r = script
    m = parse_pomdp(text, validate=False, bulk=bulk)
    assert np.array_equal(m.T_dense(), T)
    assert np.array_equal(m.O_dense(), O)
    expected_R = np.einsum("ast,atz,astz->sa", T, O, r)
    # the fold is an expectation: it equals the naive sum wherever P(s', o | s, a) is a distribution
    mass = np.einsum("ast,atz->sa", T, O)
    ok = np.isclose(mass, 1.0, rtol=0, atol=1e-12)
    assert np.allclose(m.R[ok], expected_R[ok], rtol=1e-12, atol=1e-12)


def test_large_sparse_file_is_built_without_dense_matrices(tmp_path):
    """A 3,000-state chain written by our writer reads back exactly; T stays sparse (nnz ~ 2 per row)."""
    S = 3000
    rng = np.random.default_rng(1)
    T = [sp.csr_matrix((np.full(2 * S, 0.5), (np.repeat(np.arange(S), 2),
                        np.stack([np.arange(S), rng.integers(0, S, S)], 1).ravel())), shape=(S, S))
         for _ in range(2)]
    O = [sp.csr_matrix((np.ones(S), (np.arange(S), np.arange(S) % 3)), shape=(S, 3))] * 2
    m = POMDP.from_arrays(T, O, rng.normal(size=(S, 2)), 0.95, None)
    back = read_pomdp(write_pomdp(m, tmp_path / "chain.pomdp"))
    assert _same(back, m)
    assert back.nnz()["T"] <= 4 * S


def test_duplicate_in_a_long_name_list_is_found_fast():
    names = [f"s{j}" for j in range(200_000)] + ["s7"]
    t0 = time.perf_counter()
    with pytest.raises(FormatError, match="duplicate name 's7'"):
        parse_pomdp("discount: 0.9\nstates: " + " ".join(names) + "\nactions: 1\nobservations: 1\n")
    assert time.perf_counter() - t0 < 2  # the old lookup was quadratic in the list length
