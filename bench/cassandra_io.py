"""Cassandra .pomdp reading speed: the bulk (vectorised) reader against the entry-by-entry reader on a
RockSample[n, k] file written by bench/rocksample.py, plus the writer; CPU seconds, same run.

Usage: python bench/cassandra_io.py [N K]   (default 7 8: 12,545 states, ~19 MB)
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rocksample import rocksample_model, write_cassandra  # noqa: E402

from trimpomdp.pomdp.cassandra import parse_pomdp, write_pomdp  # noqa: E402


def timed(fn, *args, **kw):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0, time.process_time() - c0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    n, k = (int(argv[0]), int(argv[1])) if len(argv) >= 2 else (7, 8)
    with tempfile.TemporaryDirectory() as d:
        path = write_cassandra(n, k, Path(d) / f"rs_{n}_{k}.pomdp")
        text = path.read_text()
        mb = path.stat().st_size / 1e6
        ref = rocksample_model(n, k)
        fast, w_fast, c_fast = timed(parse_pomdp, text, str(path), bulk=True)
        slow, w_slow, c_slow = timed(parse_pomdp, text, str(path), bulk=False)
        same = fast.fingerprint() == slow.fingerprint()
        err = max(abs(a - b).max() if (a - b).nnz else 0.0 for a, b in zip(fast.T + fast.O, ref.T + ref.O))
        _, w_write, c_write = timed(write_pomdp, fast, Path(d) / "out.pomdp")
    print(f"RockSample[{n},{k}]: {fast.n_states} states, {fast.n_actions} actions, file {mb:.1f} MB, "
          f"T nnz {fast.nnz()['T']}, O nnz {fast.nnz()['O']}")
    print(f"  entry-by-entry read (baseline): {c_slow:6.2f} s CPU ({w_slow:.2f} s wall)")
    print(f"  bulk read:                      {c_fast:6.2f} s CPU ({w_fast:.2f} s wall)  "
          f"speed-up x{c_slow / c_fast:.1f}; same model: {same}; max |T,O - generator| {err:.1e}")
    print(f"  write:                          {c_write:6.2f} s CPU ({w_write:.2f} s wall)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
