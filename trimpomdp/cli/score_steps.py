"""``trimpomdp score-steps``: PRM scores for every step of labelled solutions (ProcessBench form), the
input of ``fit-obs``. One JSON line per solution, written as soon as it is scored; ``--resume`` skips
the ids already in the output."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import click

from trimpomdp.errors import FormatError, TrimError


def load_labelled(path) -> list[dict]:
    """ProcessBench items: ``id``, ``problem``, ``steps`` (list of strings), ``label`` (first wrong step,
    -1 if none). A .json list or JSONL; a bad item is a FormatError naming its position."""
    p = Path(path)
    if not p.is_file():
        raise TrimError(f"labelled steps file not found: {p}")
    text = p.read_text(encoding="utf-8")
    try:
        if text.lstrip().startswith("["):
            items = [(i + 1, x) for i, x in enumerate(json.loads(text))]
        else:
            items = [(n, json.loads(ln)) for n, ln in enumerate(text.splitlines(), 1) if ln.strip()]
    except json.JSONDecodeError as exc:
        raise FormatError(f"invalid JSON: {exc.msg}", str(p), exc.lineno) from None
    out = []
    for n, it in items:
        where = f"item {n}"
        if not isinstance(it, dict):
            raise FormatError(f"{where}: expected an object", str(p))
        q = it.get("problem", it.get("question"))
        steps = it.get("steps")
        if not isinstance(q, str) or not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
            raise FormatError(f"{where}: needs 'problem' (string) and 'steps' (list of strings)", str(p))
        label = it.get("label")
        if label is not None and not (isinstance(label, int) and -1 <= label < max(len(steps), 1)):
            raise FormatError(f"{where}: 'label' must be -1 or a 0-based step index, got {label!r}", str(p))
        out.append({"id": str(it.get("id", n - 1)), "problem": q, "steps": steps, "label": label})
    return out


@click.command("score-steps")
@click.argument("labelled", type=click.Path(dir_okay=False))
@click.option("-o", "--out", "out", required=True, type=click.Path(dir_okay=False), help="Scores JSONL to write.")
@click.option("--prm", "prm_spec", default="judge:smollm2", show_default=True, help="judge:<model> | qwen:<folder>.")
@click.option("--limit", type=click.IntRange(0), default=None, help="Score only the first N solutions.")
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(1))
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--resume", is_flag=True, help="Skip the ids already in OUT.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def score_steps(labelled, out, prm_spec, limit, batch_size, device, resume, quiet):
    """Score every step of LABELLED solutions with a PRM -> JSONL {"id", "scores", "label"}."""
    from tqdm import tqdm

    from trimpomdp.decode.prm import load_prm, score_all_steps

    items = load_labelled(labelled)
    if limit is not None:
        items = items[:limit]
    outp = Path(out)
    done: set[str] = set()
    if resume and outp.exists():
        raw = outp.read_bytes()
        if raw and not raw.endswith(b"\n"):  # drop a half-written last line from a killed run
            raw = raw[: raw.rfind(b"\n") + 1]
            outp.write_bytes(raw)
        for n, ln in enumerate(raw.decode("utf-8").splitlines(), 1):
            if ln.strip():
                try:
                    done.add(str(json.loads(ln)["id"]))
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise FormatError("not a scores line (expected {\"id\", \"scores\"})", str(outp), n) from None
    todo = [it for it in items if it["id"] not in done]
    if not todo:
        click.echo(f"nothing to do: all {len(items)} solutions are in {out}", err=True)
        return
    prm = load_prm(prm_spec, device=device, batch_size=batch_size)
    mode = "a" if resume else "w"
    outp.parent.mkdir(parents=True, exist_ok=True)
    with open(outp, mode, encoding="utf-8") as fh, tqdm(total=len(todo), desc="score-steps", unit="solution",
                                                         disable=quiet, dynamic_ncols=True) as bar:
        for it in todo:
            scores = [float(s) for s in score_all_steps(prm, it["problem"], it["steps"])]
            if any(not math.isfinite(s) for s in scores):
                raise TrimError(f"{labelled}: PRM {prm_spec} returned a non-finite score for id {it['id']}")
            fh.write(json.dumps({"id": it["id"], "scores": scores, "label": it["label"], "prm": prm_spec}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
            bar.update(1)
    click.echo(f"scored {len(todo)} solutions ({len(done)} already done) -> {out}", err=True)
