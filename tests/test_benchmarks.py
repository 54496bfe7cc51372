"""Every shared benchmark loads in its own layout, and its real answers are graded right.

The pairs below are real gold answers from each file (line noted) against equivalent reformulations a
model may write, and against near misses that must be wrong.
"""
from __future__ import annotations

import json
import subprocess
import sys
import warnings

import pytest
from hypothesis import example, given, settings, strategies as st

from trimpomdp.decode.answers import Grading, _unit_key, extract_answer, is_equivalent, parse_answer, strip_unit
from trimpomdp.decode.problems import ProblemWarning, detect_layout, load_problems

#: file -> (layout, size, first id, first reference, grading of the first problem)
SHARED = {
    "math500.jsonl": ("math", 500, "test/precalculus/807.json", r"\left( 3, \frac{\pi}{2} \right)", "math"),
    "gsm8k_test.jsonl": ("gsm8k", 1319, "0", "18", "gsm8k"),
    "aime_train.jsonl": ("aime", 451, "1984-1", "93", "math"),
    "aime_test.jsonl": ("aime", 482, "1983-1", "60", "math"),
    "aime24.jsonl": ("math", 30, "60", "204", "math"),
    "amc23.jsonl": ("math", 40, "0", "27.0", "math"),
    "olympiadbench.jsonl": ("olympiadbench", 675, "1606", "2", "math"),
    "minerva_math.jsonl": ("minerva", 272, "0", "1.6", "math;sigfig"),
    "cmimc.jsonl": ("math", 40, "0", r"\frac{13}{32}", "math"),
}


@pytest.mark.parametrize("name", sorted(SHARED))
def test_every_shared_benchmark_loads_and_its_first_answers_parse(data_dir, name):
    layout, n, first_id, first_ref, kind = SHARED[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProblemWarning)  # a missing reference would be a warning
        problems, errors = load_problems(data_dir / "benchmarks" / name)
    assert errors == [] and len(problems) == n
    assert problems.layout == layout and problems.benchmark == name.removesuffix(".jsonl")
    assert problems.unreferenced == []
    p = problems[0]
    assert (p.id, p.reference, p.kind) == (first_id, first_ref, kind)
    assert len({q.id for q in problems}) == n
    for q in problems[:20]:
        assert q.reference and q.question.strip()
        parse_answer(q.reference)  # raises ValueError naming the part it cannot read
        said = extract_answer(rf"So the answer is $\boxed{{{q.reference}}}$.")
        assert said == q.reference and is_equivalent(said, q.reference, q.kind)


def test_the_whole_of_each_file_is_mostly_machine_readable(data_dir):
    """Beyond the first 20: at most 1% of references (equations in words, prose) stay unparsed."""
    for name in SHARED:
        problems, _ = load_problems(data_dir / "benchmarks" / name)
        bad = 0
        for q in problems:
            try:
                parse_answer(q.reference)
            except ValueError:
                bad += 1
        assert bad <= 0.02 * len(problems), (name, bad)


# (file, line, gold as loaded, grading) -> equivalent forms, wrong forms
REAL = [
    ("math500", 1, r"\left( 3, \frac{\pi}{2} \right)", "math", [r"(3, \pi/2)", r"\left(3,\dfrac{\pi}{2}\right)"],
     [r"(3, \pi)", r"(\frac{\pi}{2}, 3)"]),
    ("gsm8k_test", 1, "18", "gsm8k", [r"\$18.00", "18 dollars", "18.0"], ["19", "1.8"]),
    ("aime_train", 1, "93", "math", ["093", r"\boxed{93}", "93.0"], ["39", "930"]),
    ("aime_test", 1, "60", "math", ["060", "60.0"], ["6", "61"]),
    ("aime24", 1, "204", "math", [r"204 \text{ minutes}", "204"], ["3.4", "240"]),
    ("amc23", 1, "27.0", "math", ["27", "27.00"], ["27.5", "18"]),
    ("amc23", 2, "36.0", "math", ["36", r"\frac{72}{2}"], ["35"]),
    ("cmimc", 1, r"\frac{13}{32}", "math", ["13/32", "0.40625", r"\dfrac{13}{32}"], [r"\frac{13}{31}", "0.4"]),
    ("cmimc", 2, r"\frac{2025}{4}", "math", ["506.25", r"k = \frac{2025}{4}"], ["506", r"\frac{2025}{2}"]),
    ("cmimc", 40, "2024^{4046}", "math", [r"2024^{2023} \cdot 2024^{2023}", "(2024^{2})^{2023}"],
     ["8222", "2024^{4045}", "2024^{4046}+1"]),  # 13,374 digits: compared exactly, never as overflowed floats
    # OlympiadBench: expressions, tuples, functions, several answers, units, intervals, a tolerance
    ("olympiadbench", 2, r"$\frac{1}{2 n+2}$", "math", [r"\frac{1}{2(n+1)}", r"\frac{1}{2}\cdot\frac{1}{n+1}"],
     [r"\frac{1}{2n+1}", r"\frac{1}{n+2}"]),
    ("olympiadbench", 3, "$2^{1009}$", "math", ["2^{1009}", r"2 \cdot 2^{1008}"], ["2^{1008}", "1009"]),
    ("olympiadbench", 6, "$(1,8,19), (2,7,13), (4,5,7)$", "math",
     ["(4,5,7), (1,8,19), (2,7,13)", r"\{(1,8,19),(2,7,13),(4,5,7)\}"],
     ["(1,8,19), (2,7,13)", "(1,8,19), (2,7,13), (4,7,5)"]),
    ("olympiadbench", 9, r"$\binom{2n}{n}$", "math", [r"\frac{(2n)!}{(n!)^2}", r"\dbinom{2n}{n}"],
     [r"\binom{2n}{n-1}", "2^n"]),
    ("olympiadbench", 10, r"$m n-\lfloor m / 2\rfloor$", "math", [r"mn-\left\lfloor\frac{m}{2}\right\rfloor"],
     [r"mn-\lceil m/2\rceil", "mn - m/2"]),
    ("olympiadbench", 12, "$f(x)=2 x$", "math", ["2x", "f(x) = 2x"], ["x", "f(x)=x+2"]),
    ("olympiadbench", 14, "$69$,$84$", "math", ["84, 69", "69 and 84", r"\{69, 84\}"], ["69", "69, 85"]),
    ("olympiadbench", 15, "$k=1$", "math", ["1"], ["2"]),
    ("olympiadbench", 16, "$(2,4)$", "math", ["(2, 4)", "(x,y)=(2,4)"], ["(4,2)", "[2,4]"]),
    ("olympiadbench", 20, r"$\frac{3 m}{2}-1$", "math", [r"\frac{3m-2}{2}", "1.5m - 1"], [r"\frac{3m}{2}"]),
    ("olympiadbench", 22, "1,3,5", "math", ["5, 3, 1", r"\{1, 3, 5\}", r"n = 1, 3, 5"], ["1,3", "1,3,5,7"]),
    ("olympiadbench", 34, r"$\left\lfloor\log _{2} n\right\rfloor+1$", "math", [r"\lfloor \log_2 n \rfloor + 1"],
     [r"\lceil \log_2 n \rceil + 1", r"\log_2 n + 1"]),
    ("olympiadbench", None, r"$(-\infty, 0) \cup\{1\}$.", "math", [r"\{1\} \cup (-\infty, 0)", r"(-\infty,0)\cup\{1\}"],
     [r"(-\infty, 0]", r"(-\infty, 0) \cup \{2\}"]),
    ("olympiadbench", None, r"$[\frac{1}{2}, 8]$", "math", ["[0.5, 8]", r"\frac{1}{2} \le x \le 8"],
     ["(0.5, 8]", r"\frac12 < x \le 8"]),
    ("olympiadbench", None, r"(-\infty,-5)", "math", ["x < -5", r"(-\infty, -5)"], [r"x \le -5", "(-5, \\infty)"]),
    ("olympiadbench", None, r"$\frac{41}{12}$", "math;unit=km", [r"\frac{41}{12} \text{ km}", r"\frac{41}{12}\mathrm{~km}"],
     [r"\frac{41}{12}\text{ m}", r"\frac{12}{41}"]),
    ("olympiadbench", None, "$166$", "math;unit=$cm^2$", [r"166 \text{ cm}^2", r"166\mathrm{~cm}^{2}", "166"],
     ["166 cm", "16.6"]),
    ("olympiadbench", None, r"$\frac{600}{7}$", "math;unit=km/h", [r"\frac{600}{7} \mathrm{~km} / \mathrm{h}",
                                                                  r"\frac{600}{7} \text{ km/h}"],
     [r"\frac{600}{7}\text{ km}", "85"]),
    ("olympiadbench", None, "50", "math;unit=minutes", ["50 minutes", "50"], ["5 minutes", "50 hours"]),
    ("olympiadbench", None, "4.2", "math;tol=0.1;unit=%", [r"4.25\%", "4.3", "4.15"], ["4.4", "4.0", "42"]),
    ("olympiadbench", None, r"$90^{\circ}$,$60^{\circ}$", "math", ["60, 90", r"60^\circ, 90^\circ"], ["60, 30"]),
    # Minerva: numbers at the reference's precision, scientific notation, units after the box, expressions
    ("minerva_math", 1, "1.6", "math;sigfig", ["1.60", r"1.6 \mathrm{~cm}", "1.6 cm", "1.62"], ["1.7", "16", "1.5"]),
    ("minerva_math", 2, "4.5e33", "math;sigfig",
     [r"4.5 \times 10^{33}", r"4.47\times10^{33}\ \mathrm{ergs\,s^{-1}}", "4.5e+33", r"4.5 \cdot 10^{33}"],
     ["4.5e32", r"5 \times 10^{33}", "4.4e33"]),
    ("minerva_math", 6, "np.arcsin(10/13)", "math;sigfig", [r"\arcsin\left(\frac{10}{13}\right)", r"\sin^{-1}(10/13)"],
     [r"\arccos(10/13)", r"\arcsin(13/10)"]),
    ("minerva_math", 26, r"\frac{a M^{1 / 3}}{G M^{2 / 3}+b}", "math;sigfig", [r"\frac{a}{G M^{1/3} + b M^{-1/3}}"],
     [r"\frac{a M^{1/3}}{G M^{2/3}-b}"]),
    ("minerva_math", 12, "300", "math;sigfig", ["300.0", r"3 \times 10^{2}"], ["301", "299"]),
    ("minerva_math", 5, "0.006", "math;sigfig", [r"6 \times 10^{-3}", "0.0062"], ["0.007", "0.06"]),
    ("minerva_math", 39, "-1./3", "math;sigfig", [r"-\frac{1}{3}", "-1/3"], [r"\frac{1}{3}", "-0.34", "-0.3333"]),
]


@pytest.mark.parametrize("bench,line,gold,kind,same,wrong", REAL, ids=[f"{r[0]}:{r[1] or r[2][:12]}" for r in REAL])
def test_real_gold_answers_against_reformulations(data_dir, bench, line, gold, kind, same, wrong):
    problems, _ = load_problems(data_dir / "benchmarks" / f"{bench}.jsonl")
    assert any(p.reference == gold.strip() and p.kind == kind for p in problems), \
        f"{gold!r} is not a {bench} reference graded {kind!r}"
    if line is not None:
        assert problems[line - 1].reference == gold.strip()
    for s in same:
        assert is_equivalent(s, gold, kind), (s, gold)
    for w in wrong:
        assert not is_equivalent(w, gold, kind), (w, gold)


def test_layout_detection_and_references_in_each_layout(tmp_path):
    f = tmp_path / "mixed.jsonl"
    assert detect_layout({"question": "q", "answer": "so\n#### 4"}).name == "gsm8k"
    assert detect_layout({"question": "q", "answer": "4"}) is None  # generic: the fields tried in order
    assert detect_layout({"problem": "p", "solution": r"so \boxed{4}"}).name == "math-solution"
    assert detect_layout({"question": "q", "final_answer": ["4"], "answer_type": "Numerical"}).name == "olympiadbench"
    recs = [{"question": "q0", "final_answer": ["$1$", "$2$"], "answer_type": "Numerical", "unit": None},
            {"question": "q1", "final_answer": '["$3$"]', "answer_type": "Numerical", "error": "0.5",
             "unit": "cm"},
            {"question": "q2", "final_answer": [], "answer_type": "Numerical"}]
    f.write_text("\n".join(json.dumps(r) for r in recs))
    with pytest.warns(ProblemWarning, match=r"1 of 3 problems have no usable reference answer \(field "
                                            r"'final_answer' is an empty list; line 3\)"):
        problems, errors = load_problems(f)
    assert errors == [] and problems.layout == "olympiadbench"
    assert [(p.reference, p.kind) for p in problems] == [("$1$, $2$", "math"), ("$3$", "math;tol=0.5;unit=cm"),
                                                         (None, "math")]
    assert problems.unreferenced == ["2"]


def test_worked_solutions_and_aime_answers(tmp_path):
    f = tmp_path / "sol.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in [
        {"problem": "p0", "solution": r"Thus $x=\boxed{\frac{1}{2}}$ m."},
        {"problem": "p1", "solution": "A long derivation. " * 20},
        {"problem": "p2", "solution": "12"}]))
    with pytest.warns(ProblemWarning, match=r"2 of 3 .*field 'solution' has no \\boxed\{\} answer; lines 2, 3"):
        problems, _ = load_problems(f)
    assert problems.layout == "math-solution" and problems[0].reference == r"\frac{1}{2}"
    g = tmp_path / "aime.jsonl"
    g.write_text(json.dumps({"ID": "2001-I-1", "Year": 2001, "Problem Number": 1, "problem": "p",
                             "solution": "630"}) + "\n")
    problems, _ = load_problems(g)
    assert (problems.layout, problems[0].id, problems[0].reference) == ("aime", "2001-I-1", "630")
    # a generic file whose 'solution' is a short answer or boxed: read; a long unboxed one: reported
    h = tmp_path / "generic.jsonl"
    h.write_text("\n".join(json.dumps(r) for r in [{"question": "q", "solution": "7"},
                                                   {"question": "q", "solution": "x " * 150}]))
    with pytest.warns(ProblemWarning, match="worked solution without"):
        problems, _ = load_problems(h)
    assert [p.reference for p in problems] == ["7", None]


def test_grading_strings_round_trip_and_bad_ones_are_named():
    for kind in ("math", "gsm8k", "plain", "math;sigfig", "math;tol=0.1;unit=%", "math;unit=km/h"):
        assert str(Grading.parse(kind)) == kind
    assert Grading.parse("math;unit=$cm^2$").unit == "$cm^2$"
    for bad, msg in (("latex", "mode must be one of"), ("math;tol=-1", "tol must be"), ("math;tol=x", "tol must"),
                     ("math;fuzzy", "unknown option 'fuzzy'"), ("math;unit=", "unknown option")):
        with pytest.raises(ValueError, match=msg):
            Grading.parse(bad)
    with pytest.raises(ValueError):
        is_equivalent("1", "1", "exact")


def test_strip_unit_cuts_only_the_unit():
    assert strip_unit(r"\frac{600}{7} \mathrm{~km} / \mathrm{h}", "km/h") == r"\frac{600}{7}"
    assert strip_unit(r"166 \text{cm}^2", "$cm^2$") == "166"
    assert strip_unit("50 minutes", "minute") == "50"
    assert strip_unit("5 km", "m") == "5 km"  # "km" is not "m"
    assert strip_unit("km", "km") == "km"  # nothing left: not a number with a unit


@settings(max_examples=60, deadline=None)
@given(st.floats(min_value=1e-15, max_value=1e15, allow_nan=False), st.integers(1, 5))
@example(0.15, 2)
@example(300.0, 3)
def test_sigfig_matches_exactly_the_numbers_that_round_to_the_reference(x, d):
    """A reference written with d significant figures is met by a prediction iff both round alike."""
    ref = f"{x:.{d - 1}e}"
    ref_value = float(ref)
    for factor in (1.0, 1 + 10 ** -(d + 2), 1 - 10 ** -(d + 2), 1 + 3 * 10 ** -d, 0.5, 2.0):
        pred = ref_value * factor
        expect = f"{pred:.{d - 1}e}" == ref
        assert is_equivalent(repr(pred), ref, "math;sigfig") == expect, (pred, ref)
    assert not is_equivalent("x", ref, "math;sigfig")


@settings(max_examples=60, deadline=None)
@given(st.integers(-10**6, 10**6), st.integers(0, 3), st.floats(0, 2))
@example(1, 0, 0.0)
def test_tolerance_is_absolute_and_inclusive(n, dec, tol):
    ref = n / 10 ** dec
    kind = f"math;tol={tol:g}"
    t = Grading.parse(kind).tol
    assert is_equivalent(repr(ref + 0.999 * t), repr(ref), kind)
    assert is_equivalent(repr(ref - 0.999 * t), repr(ref), kind)
    assert not is_equivalent(repr(ref + 1.01 * t + 2e-6 * max(1, abs(ref))), repr(ref), kind)


_PIECES = list("0123456789xe.+-/^_{}()[],=$% ") + ["\\frac", "\\times", "10^{", "\\text{ km}", "\\mathrm{~cm}",
                                                  "km", "\\cup", "\\le", "<", "\\lfloor", "\\rfloor", "np.arcsin("]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=10).map("".join),
       st.lists(st.sampled_from(_PIECES), max_size=10).map("".join),
       st.sampled_from(["math;sigfig", "math;tol=0.1;unit=%", "math;unit=km", "gsm8k;tol=1", "math;unit=$cm^2$"]))
def test_benchmark_gradings_never_raise_on_garbage(a, b, kind):
    assert isinstance(is_equivalent(a, b, kind), bool)
    cut = strip_unit(a, "km")
    assert a.startswith(cut) and (cut == a or _unit_key(a[len(cut):]).rstrip(".") in ("km", "kms"))


def test_decode_reports_unreferenced_problems_as_one_warning_line(tmp_path):
    """As a user runs it: the warning line before any model loads, then (here) the missing model's error."""
    f = tmp_path / "noref.jsonl"
    f.write_text("\n".join(json.dumps({"problem": f"p{i}", "solution": "Long work. " * 30}) for i in range(3)))
    res = subprocess.run([sys.executable, "-m", "trimpomdp", "decode", str(f), "--policy", "weak", "--weak",
                          str(tmp_path / "none"), "-o", str(tmp_path / "o.jsonl")],
                         capture_output=True, text=True, timeout=120)
    err = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(err) == 2, res.stderr
    assert err[0] == (f"warning: {f}: 3 of 3 problems have no usable reference answer (field 'solution' has no "
                      "\\boxed{} answer; lines 1, 2, 3): they decode but are not graded (name the field with "
                      "--answer-field)")
    assert err[1].startswith("Error:")  # the missing model (or whatever stops it first)
