"""Problem files: layout detection, ids, limits and line-numbered errors for bad lines."""
from __future__ import annotations

import json

import pytest

from trimpomdp.decode.problems import Problem, ProblemWarning, gsm8k_final_answer, load_problems
from trimpomdp.errors import TrimError


def test_math500_layout(data_dir):
    problems, errors = load_problems(data_dir / "benchmarks" / "math500.jsonl", limit=5)
    assert errors == [] and len(problems) == 5
    p = problems[0]
    assert p.kind == "math" and p.id == "test/precalculus/807.json"
    assert p.reference == r"\left( 3, \frac{\pi}{2} \right)"
    assert p.question.startswith("Convert the point")


def test_gsm8k_layout(data_dir):
    problems, errors = load_problems(data_dir / "benchmarks" / "gsm8k_test.jsonl")
    assert errors == [] and len(problems) == 1319
    assert problems[0] == Problem(id="0", question=problems[0].question, reference="18", kind="gsm8k")
    assert problems[1].reference == "3"
    assert len({p.id for p in problems}) == 1319


def test_bad_lines_reported_by_number_and_rest_loaded(tmp_path):
    f = tmp_path / "p.jsonl"
    lines = [json.dumps({"question": "q0", "answer": "a\n#### 1"}),
             "{not json",
             json.dumps({"answer": "no question"}),
             "",
             json.dumps(["a list"]),
             json.dumps({"question": "q5", "answer": "work #### 2,000"}),
             json.dumps({"question": "", "answer": "1"})]
    f.write_text("\n".join(lines) + "\n")
    problems, errors = load_problems(f)
    assert [p.id for p in problems] == ["0", "5"]
    assert [p.reference for p in problems] == ["1", "2,000"]
    assert len(errors) == 4
    assert errors[0].startswith(f"{f}:2: invalid JSON")
    assert f"{f}:3: missing question field" in errors[1]
    assert f"{f}:5: expected a JSON object" in errors[2]
    assert f"{f}:7:" in errors[3]


def test_custom_fields_ids_duplicates_and_limit(tmp_path):
    f = tmp_path / "p.jsonl"
    recs = [{"id": 7, "q": "one", "sol": "x = 2"}, {"id": "b", "q": "two", "sol": "3"},
            {"id": 7, "q": "dup", "sol": "1"}, {"q": "no id", "sol": "4"}]
    f.write_text("\n".join(json.dumps(r) for r in recs))
    problems, errors = load_problems(f, question_field="q", answer_field="sol")
    assert [p.id for p in problems] == ["7", "b", "3"]
    assert all(p.kind == "plain" for p in problems)
    assert len(errors) == 1 and "duplicate id '7'" in errors[0] and ":3:" in errors[0]
    assert len(load_problems(f, question_field="q", answer_field="sol", limit=1)[0]) == 1
    _, errs = load_problems(f, question_field="q", answer_field="missing")
    assert len(errs) == 4 and "missing answer field 'missing'" in errs[0]


def test_json_list_and_missing_reference(tmp_path):
    f = tmp_path / "p.json"
    f.write_text(json.dumps([{"problem": "p", "answer": "5"}, {"problem": "no answer"}]))
    with pytest.warns(ProblemWarning, match=r"1 of 2 problems have no usable reference answer \(no 'answer' "
                                            r"field; line 2\): they decode but are not graded"):
        problems, errors = load_problems(f)
    assert errors == [] and [p.reference for p in problems] == ["5", None]
    assert problems[0].kind == "math"


def test_errors():
    with pytest.raises(TrimError, match="file not found"):
        load_problems("/nonexistent/x.jsonl")
    assert gsm8k_final_answer("a\n#### 42 ") == "42"
    assert gsm8k_final_answer("no marker") is None


def test_problem_files_that_are_not_text_or_nest_too_deeply(tmp_path):
    from trimpomdp.decode.problems import load_problems
    from trimpomdp.errors import FormatError

    deep = tmp_path / "deep.jsonl"
    deep.write_text('{"question": "1+1?", "answer": "2"}\n' + "[" * 100_000 + "\n")
    probs, errors = load_problems(deep)
    assert len(probs) == 1 and len(errors) == 1 and "nested too deeply" in errors[0] and ":2:" in errors[0]
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(b'{"question": "\xff\xfe"}\n')
    with pytest.raises(FormatError, match="not UTF-8"):
        load_problems(binary)
