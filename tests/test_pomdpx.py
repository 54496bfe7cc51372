"""SARSOP .pomdpx reader: the shared twins equal their .pomdp files, a factored model flattens as the
product of its factors, unsafe XML is refused, and errors name the line."""
from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trimpomdp.errors import FormatError
from trimpomdp.pomdp import load_model, read_pomdpx
from trimpomdp.pomdp.pomdpx import parse_pomdpx


@pytest.mark.parametrize("xfile,pfile", [("Tiger.pomdpx", "tiger.95.POMDP"), ("Hallway.pomdpx", "Hallway.pomdp")])
def test_twins_equal_their_pomdp_files(pomdp_dir, xfile, pfile):
    x, p = read_pomdpx(pomdp_dir / xfile), load_model(pomdp_dir / pfile)
    # same state/action/observation order (index-wise), names may differ (s0 vs 0, obs-left vs tiger-left)
    assert (x.n_states, x.n_actions, x.n_observations) == (p.n_states, p.n_actions, p.n_observations)
    assert x.discount == p.discount
    assert np.allclose(x.T_dense(), p.T_dense(), rtol=0, atol=1e-12)
    assert np.allclose(x.O_dense(), p.O_dense(), rtol=0, atol=1e-12)
    assert np.allclose(x.R, p.R, rtol=0, atol=1e-12)
    assert np.allclose(x.initial_belief, p.initial_belief, rtol=0, atol=1e-12)


def test_tiger_names(pomdp_dir):
    x = load_model(pomdp_dir / "Tiger.pomdpx")
    assert x.states == ("tiger-left", "tiger-right")
    assert x.actions == ("listen", "open-left", "open-right")
    assert x.observations == ("obs-left", "obs-right")
    assert x.R[0, 1] == -100 and x.O[0][0, 0] == 0.85


def test_numvalues_names(pomdp_dir):
    x = load_model(pomdp_dir / "Hallway.pomdpx")
    assert x.states[:2] == ("s0", "s1") and x.actions[0] == "a0" and x.observations[-1] == "o20"


FACTORED = """<?xml version="1.0"?>
<pomdpx version="0.1" id="factored">
<Discount>0.9</Discount>
<Variable>
  <StateVar vnamePrev="x0" vnameCurr="x1" fullyObs="false"><ValueEnum>lo hi</ValueEnum></StateVar>
  <StateVar vnamePrev="y0" vnameCurr="y1" fullyObs="true"><NumValues>3</NumValues></StateVar>
  <ObsVar vname="z"><ValueEnum>quiet loud</ValueEnum></ObsVar>
  <ActionVar vname="act"><ValueEnum>wait push</ValueEnum></ActionVar>
  <RewardVar vname="r1"/><RewardVar vname="r2"/>
</Variable>
<InitialStateBelief>
  <CondProb><Var>x0</Var><Parent>null</Parent><Parameter type="TBL">
    <Entry><Instance>-</Instance><ProbTable>0.25 0.75</ProbTable></Entry></Parameter></CondProb>
  <CondProb><Var>y0</Var><Parent>null</Parent><Parameter>
    <Entry><Instance>-</Instance><ProbTable>uniform</ProbTable></Entry></Parameter></CondProb>
</InitialStateBelief>
<StateTransitionFunction>
  <CondProb><Var>x1</Var><Parent>act x0</Parent><Parameter type="TBL">
    <Entry><Instance>wait - -</Instance><ProbTable>identity</ProbTable></Entry>
    <Entry><Instance>push * -</Instance><ProbTable>0.3 0.7</ProbTable></Entry>
  </Parameter></CondProb>
  <CondProb><Var>y1</Var><Parent>y0</Parent><Parameter type="TBL">
    <Entry><Instance>- -</Instance><ProbTable>0.5 0.5 0 0 0.5 0.5 1 0 0</ProbTable></Entry>
  </Parameter></CondProb>
</StateTransitionFunction>
<ObsFunction>
  <CondProb><Var>z</Var><Parent>act x1</Parent><Parameter type="TBL">
    <Entry><Instance>* - -</Instance><ProbTable>0.9 0.1 0.2 0.8</ProbTable></Entry>
    <Entry><Instance>push hi -</Instance><ProbTable>uniform</ProbTable></Entry>
  </Parameter></CondProb>
</ObsFunction>
<RewardFunction>
  <Func><Var>r1</Var><Parent>act x0</Parent><Parameter type="TBL">
    <Entry><Instance>* *</Instance><ValueTable>0</ValueTable></Entry>
    <Entry><Instance>push lo</Instance><ValueTable>-1</ValueTable></Entry></Parameter></Func>
  <Func><Var>r2</Var><Parent>x1</Parent><Parameter type="TBL">
    <Entry><Instance>hi</Instance><ValueTable>5</ValueTable></Entry></Parameter></Func>
</RewardFunction>
</pomdpx>
"""


def test_factored_model_flattens_to_the_product_of_its_factors():
    m = parse_pomdpx(FACTORED)
    assert m.states == ("lo_s0", "lo_s1", "lo_s2", "hi_s0", "hi_s1", "hi_s2")
    # observations: the ObsVar, then the fully observed state variable
    assert m.observations == ("quiet_s0", "quiet_s1", "quiet_s2", "loud_s0", "loud_s1", "loud_s2")
    Px = {0: np.eye(2), 1: np.array([[0.3, 0.7], [0.3, 0.7]])}
    Py = np.array([[0.5, 0.5, 0], [0, 0.5, 0.5], [1, 0, 0]])
    Pz = {0: np.array([[0.9, 0.1], [0.2, 0.8]]), 1: np.array([[0.9, 0.1], [0.5, 0.5]])}
    for a in (0, 1):
        assert np.allclose(m.T[a].toarray(), np.kron(Px[a], Py))
        O = np.zeros((6, 6))
        for x in range(2):
            for y in range(3):
                for z in range(2):
                    O[x * 3 + y, z * 3 + y] = Pz[a][x, z]
        assert np.allclose(m.O[a].toarray(), O)
    # r1(act, x) + E[5 * (x' == hi)]
    R = np.zeros((6, 2))
    for x in range(2):
        R[x * 3:(x + 1) * 3, 0] = 5.0 * Px[0][x, 1]
        R[x * 3:(x + 1) * 3, 1] = (-1.0 if x == 0 else 0.0) + 5.0 * Px[1][x, 1]
    assert np.allclose(m.R, R)
    assert np.allclose(m.initial_belief, np.repeat([0.25, 0.75], 3) / 3)
    assert m.discount == 0.9


# ---------------------------------------------------------------------------- safety and errors
@pytest.mark.parametrize("header", [
    '<!DOCTYPE pomdpx [<!ENTITY lol "lol">]>',
    '<!doctype pomdpx SYSTEM "file:///etc/passwd">',
    '<!ENTITY x SYSTEM "http://example.com/">',
])
def test_unsafe_xml_is_refused(header):
    doc = FACTORED.replace('<?xml version="1.0"?>\n', '<?xml version="1.0"?>\n' + header + "\n")
    with pytest.raises(FormatError, match="DOCTYPE/ENTITY declarations are not allowed") as ei:
        parse_pomdpx(doc, path="evil.pomdpx")
    assert str(ei.value).startswith("evil.pomdpx:2: ")


def test_unsafe_xml_in_another_encoding_is_refused_by_the_parser():
    doc = ('<?xml version="1.0" encoding="UTF-16"?>\n<!DOCTYPE p [<!ENTITY a "b">]>\n<pomdpx/>')
    with pytest.raises(FormatError, match="not allowed"):
        parse_pomdpx(doc.encode("utf-16"))


def _err(doc: str) -> str:
    with pytest.raises(FormatError) as ei:
        parse_pomdpx(doc, path="f.pomdpx")
    msg = str(ei.value)
    assert "\n" not in msg and msg.startswith("f.pomdpx:")
    return msg


def _line_of(doc: str, needle: str) -> int:
    return doc[: doc.index(needle)].count("\n") + 1


def test_malformed_xml_names_line():
    doc = FACTORED.replace("</ObsFunction>", "</ObsFunctio>")
    assert _err(doc).startswith(f"f.pomdpx:{_line_of(doc, '</ObsFunctio>')}: malformed XML")


def test_unknown_value_names_line():
    doc = FACTORED.replace("<Instance>push lo</Instance>", "<Instance>push medium</Instance>")
    msg = _err(doc)
    assert f"f.pomdpx:{_line_of(doc, 'push medium')}:" in msg and "unknown value 'medium'" in msg


def test_wrong_number_of_values_names_line():
    doc = FACTORED.replace("<ProbTable>0.3 0.7</ProbTable>", "<ProbTable>0.3 0.2 0.5</ProbTable>")
    msg = _err(doc)
    assert f":{_line_of(doc, '0.3 0.2 0.5')}:" in msg and "needs 2 values" in msg


def test_wrong_instance_length_and_unknown_variable():
    assert "needs 3 values" in _err(FACTORED.replace("<Instance>push * -</Instance>", "<Instance>push -</Instance>"))
    assert "unknown variable 'w0'" in _err(FACTORED.replace("<Parent>y0</Parent>", "<Parent>w0</Parent>"))


def test_bad_probabilities_are_rejected():
    assert "not a probability" in _err(FACTORED.replace("0.3 0.7", "-0.3 1.3")) \
        or "probabilities in [0, 1]" in _err(FACTORED.replace("0.3 0.7", "-0.3 1.3"))
    assert "sums to" in _err(FACTORED.replace("0.3 0.7", "0.3 0.6"))
    assert "bad number" in _err(FACTORED.replace("0.3 0.7", "0.3 seven"))


def test_unsupported_parameter_type():
    doc = FACTORED.replace('<Parameter type="TBL">\n    <Entry><Instance>wait',
                           '<Parameter type="DD">\n    <Entry><Instance>wait')
    assert "only Parameter type 'TBL'" in _err(doc)


def test_missing_pieces():
    no_y1 = re.sub(r"<CondProb><Var>y1</Var>.*?</CondProb>", "", FACTORED, flags=re.S)
    assert "no <CondProb> for 'y1'" in _err(no_y1)
    assert "root element must be <pomdpx>" in _err('<?xml version="1.0"?><model/>')


# ---------------------------------------------------------------------------- property: flat tables
def _as_pomdpx(T, O, R, b0, discount) -> str:
    """A single-variable .pomdpx document holding the given tables in full ('-' instances)."""
    A, S, Z = O.shape
    fmt = lambda x: " ".join(repr(float(v)) for v in np.ravel(x))  # noqa: E731
    t_entries = "".join(f"<Entry><Instance>a{a} - -</Instance><ProbTable>{fmt(T[a])}</ProbTable></Entry>"
                        for a in range(A))
    o_entries = "".join(f"<Entry><Instance>a{a} - -</Instance><ProbTable>{fmt(O[a])}</ProbTable></Entry>"
                        for a in range(A))
    r_entries = "".join(f"<Entry><Instance>a{a} -</Instance><ValueTable>{fmt(R[:, a])}</ValueTable></Entry>"
                        for a in range(A))
    return f"""<?xml version="1.0"?><pomdpx><Discount>{discount!r}</Discount><Variable>
<StateVar vnamePrev="s" vnameCurr="s1"><NumValues>{S}</NumValues></StateVar>
<ObsVar vname="o"><NumValues>{Z}</NumValues></ObsVar><ActionVar vname="a"><NumValues>{A}</NumValues></ActionVar>
<RewardVar vname="r"/></Variable>
<InitialStateBelief><CondProb><Var>s</Var><Parent>null</Parent><Parameter><Entry><Instance>-</Instance>
<ProbTable>{fmt(b0)}</ProbTable></Entry></Parameter></CondProb></InitialStateBelief>
<StateTransitionFunction><CondProb><Var>s1</Var><Parent>a s</Parent><Parameter>{t_entries}</Parameter></CondProb>
</StateTransitionFunction>
<ObsFunction><CondProb><Var>o</Var><Parent>a s1</Parent><Parameter>{o_entries}</Parameter></CondProb></ObsFunction>
<RewardFunction><Func><Var>r</Var><Parent>a s</Parent><Parameter>{r_entries}</Parameter></Func></RewardFunction>
</pomdpx>"""


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(1, 3), st.integers(1, 4), st.integers(0, 2**31 - 1))
def test_full_tables_read_back(S, A, Z, seed):
    rng = np.random.default_rng(seed)

    def stochastic(*shape):
        m = rng.random(shape) * (rng.random(shape) < 0.6) + np.eye(shape[-2], shape[-1]) * 0.1
        m[..., 0] += 1e-3
        return m / m.sum(axis=-1, keepdims=True)

    T, O, b0 = stochastic(A, S, S), stochastic(A, S, Z), stochastic(1, S)[0]
    R = rng.normal(size=(S, A))
    m = parse_pomdpx(_as_pomdpx(T, O, R, b0, 0.9))
    assert np.allclose(m.T_dense(), T, rtol=1e-14, atol=0) and np.allclose(m.O_dense(), O, rtol=1e-14, atol=0)
    assert np.array_equal(m.R, R) and np.allclose(m.initial_belief, b0, rtol=1e-14, atol=0)
    assert m.states == tuple(f"s{i}" for i in range(S)) and m.actions[-1] == f"a{A - 1}"


# ---------------------------------------------------------------------------- table keywords
@pytest.mark.parametrize("word", ["uniform", "identity", "Uniform"])
def test_keywords_are_refused_in_reward_tables(pomdp_dir, word):
    # 'uniform' used to be read as 1 / (number of child values) = +1 for the listen reward of -1, and the
    # model passed validation; rewards are utilities, so SARSOP's keywords have no meaning there
    doc = (pomdp_dir / "Tiger.pomdpx").read_text().replace("<ValueTable>-1</ValueTable>",
                                                            f"<ValueTable>{word}</ValueTable>")
    msg = _err(doc)
    assert f"f.pomdpx:{_line_of(doc, word + '</ValueTable>')}:" in msg
    assert f"{word!r} is not allowed in a <ValueTable>" in msg and "instance 'listen *'" in msg


def test_keywords_keep_their_meaning_in_probability_tables():
    m = parse_pomdpx(FACTORED)  # 'identity' in T and 'uniform' in O and in the initial belief
    y0 = np.array([1 / 3] * 3)
    assert np.allclose(m.initial_belief, np.kron([0.25, 0.75], y0))
    wait = m.actions.index("wait")
    x_next = m.T_dense()[wait].reshape(2, 3, 2, 3).sum(axis=3).sum(axis=1) / 3
    assert np.allclose(x_next, np.eye(2))
