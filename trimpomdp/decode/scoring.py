"""Per-step PRM scores of labelled solutions (``trimpomdp score-steps``), the input of ``fit-obs``:
one JSON line per solution, written and fsynced as soon as it is scored, resumable."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from trimpomdp.errors import FormatError, TrimError


def scored_ids(out) -> set[str]:
    """Ids already in a scores file; a half-written last line from a killed run is cut off."""
    outp = Path(out)
    done: set[str] = set()
    if not outp.exists():
        return done
    raw = outp.read_bytes()
    if raw and not raw.endswith(b"\n"):
        raw = raw[: raw.rfind(b"\n") + 1]
        outp.write_bytes(raw)
    for n, ln in enumerate(raw.decode("utf-8", errors="replace").splitlines(), 1):
        if ln.strip():
            try:
                done.add(str(json.loads(ln)["id"]))
            except (json.JSONDecodeError, KeyError, TypeError):
                raise FormatError("not a scores line (expected {\"id\", \"scores\"})", str(outp), n) from None
    return done


def sample_items(items: list, n: int, seed: int = 0) -> list:
    """The first ``n`` items of a seeded shuffle (all of them, shuffled, when there are fewer). Samples
    are nested: a run stopped after k items has scored exactly the sample of size k."""
    import random

    order = random.Random(seed).sample(range(len(items)), len(items))
    return [items[i] for i in order[:n]]


def score_labelled(items: list[dict], prm, out, prm_name: str, resume: bool = False,
                   progress: bool = True) -> tuple[int, int]:
    """Score every step of each item (``load_processbench`` form) with ``prm``; returns (scored now,
    already done). With ``resume`` the ids already in ``out`` are skipped and the file is appended to."""
    from tqdm import tqdm

    from trimpomdp.decode.prm import score_all_steps

    done = scored_ids(out) if resume else set()
    todo = [it for it in items if it["id"] not in done]
    if not todo:
        return 0, len(done)
    outp = Path(out)
    outp.parent.mkdir(parents=True, exist_ok=True)
    with open(outp, "a" if resume else "w", encoding="utf-8") as fh, \
            tqdm(total=len(todo), desc="score-steps", unit="solution", disable=not progress,
                 dynamic_ncols=True) as bar:
        for it in todo:
            scores = [float(s) for s in score_all_steps(prm, it["problem"], it["steps"])]
            if any(not math.isfinite(s) for s in scores):
                raise TrimError(f"PRM {prm_name} returned a non-finite score for id {it['id']}")
            fh.write(json.dumps({"id": it["id"], "scores": scores, "label": it["label"], "prm": prm_name}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
            bar.update(1)
    return len(todo), len(done)
