"""RockSample[n, k] (Smith & Simmons, UAI 2004) as a tabular POMDP and a Cassandra ``.pomdp`` file.

Follows Trey Smith's zmdp generators: grid n x n, k rocks; state = (x, y, rock qualities) plus one
absorbing terminal state. Actions: north, south, east, west, sample, check_1..check_k. Moving east off the
grid ends the episode with +10; sampling a good rock gives +10 and makes it bad, a bad rock -10; illegal
moves (other walls) and sampling an empty cell cost -100 and end the episode. check_i reports the true
quality with probability (1 + 2^(-d / d0)) / 2, d the Euclidean distance, d0 the half-efficiency distance
(4 for [4,4] and [5,5], 20 otherwise, as in zmdp); other actions always observe ``good``. Discount 0.95; the robot starts at the standard cell with every rock good with prob. 1/2.
Rock layouts for (4,4), (5,5), (5,7), (7,8), (11,11) are the standard ones (as in pomdpsol's / DESPOT's
instances); other (n, k) get a deterministic pseudo-random layout (seeded numpy generator).

Usage: python bench/rocksample.py N K [-o FILE]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

#: (n, k) -> (start (x, y), rock cells (x, y))
LAYOUTS = {
    (4, 4): ((0, 2), [(3, 1), (2, 1), (1, 3), (1, 0)]),
    (5, 5): ((0, 2), [(2, 4), (0, 4), (3, 3), (2, 2), (4, 1)]),
    (5, 7): ((0, 2), [(1, 0), (2, 1), (1, 2), (2, 2), (4, 2), (0, 3), (3, 4)]),
    (7, 8): ((0, 3), [(2, 0), (0, 1), (3, 1), (6, 3), (2, 4), (3, 4), (5, 5), (1, 6)]),
    (11, 11): ((0, 5), [(0, 3), (0, 7), (1, 8), (2, 4), (3, 3), (3, 8), (4, 3), (5, 8), (6, 1), (9, 3),
                        (9, 9)]),
}
#: sensor half-efficiency distance d0 per instance (zmdp's generators: 4 for the small grids, 20 above)
HALF_EFFICIENCY = {(4, 4): 4.0, (5, 5): 4.0}
DEFAULT_HALF_EFFICIENCY = 20.0
EXIT_REWARD = 10.0
ILLEGAL_PENALTY = -100.0
DISCOUNT = 0.95


def half_efficiency_distance(n: int, k: int) -> float:
    return HALF_EFFICIENCY.get((n, k), DEFAULT_HALF_EFFICIENCY)


def layout(n: int, k: int, seed: int = 0):
    if (n, k) in LAYOUTS:
        return LAYOUTS[(n, k)]
    if k > n * n:
        raise ValueError(f"cannot place {k} rocks on a {n}x{n} grid")
    rng = np.random.default_rng(seed + 1000 * n + k)
    cells = rng.choice(n * n, size=k, replace=False)
    return (0, n // 2), [(int(c % n), int(c // n)) for c in cells]


def rocksample_arrays(n: int, k: int, seed: int = 0):
    """Dense-free construction: returns (T list of (rows, cols, probs) per action, O, R, b0, names)."""
    start, rocks = layout(n, k, seed)
    nr = 1 << k
    S = n * n * nr + 1
    term = S - 1
    A = 5 + k
    rock_at = {pos: i for i, pos in enumerate(rocks)}

    def sid(x, y, bits):
        return (y * n + x) * nr + bits

    T = [([], [], []) for _ in range(A)]
    O = [([], [], []) for _ in range(A)]  # rows s', cols o (0 good, 1 bad)
    R = np.zeros((S, A))
    moves = {0: (0, 1), 1: (0, -1), 2: (1, 0), 3: (-1, 0)}
    d0 = half_efficiency_distance(n, k)

    def put(a, s, sp_, r=0.0):
        T[a][0].append(s), T[a][1].append(sp_), T[a][2].append(1.0)
        R[s, a] = r

    for y in range(n):
        for x in range(n):
            for bits in range(nr):
                s = sid(x, y, bits)
                for a, (dx, dy) in moves.items():
                    nx_, ny_ = x + dx, y + dy
                    if nx_ >= n:
                        put(a, s, term, EXIT_REWARD)
                    elif 0 <= nx_ < n and 0 <= ny_ < n:
                        put(a, s, sid(nx_, ny_, bits))
                    else:
                        put(a, s, term, ILLEGAL_PENALTY)
                r = rock_at.get((x, y))
                if r is None:
                    put(4, s, term, ILLEGAL_PENALTY)
                else:
                    good = (bits >> r) & 1
                    put(4, s, sid(x, y, bits & ~(1 << r)), 10.0 if good else -10.0)
                for r in range(k):
                    a = 5 + r
                    put(a, s, s)
                    d = np.hypot(x - rocks[r][0], y - rocks[r][1])
                    eff = 2.0 ** (-d / d0)
                    pg = eff * ((bits >> r) & 1) + (1.0 - eff) * 0.5
                    for o, p in ((0, pg), (1, 1.0 - pg)):
                        if p > 0:
                            O[a][0].append(s), O[a][1].append(o), O[a][2].append(p)
                for a in range(5):
                    O[a][0].append(s), O[a][1].append(0), O[a][2].append(1.0)
    for a in range(A):
        T[a][0].append(term), T[a][1].append(term), T[a][2].append(1.0)
        O[a][0].append(term), O[a][1].append(0), O[a][2].append(1.0)
    b0 = np.zeros(S)
    for bits in range(nr):
        b0[sid(start[0], start[1], bits)] = 1.0 / nr
    states = [None] * (S - 1)
    for y in range(n):
        for x in range(n):
            for bits in range(nr):
                states[sid(x, y, bits)] = f"x{x}y{y}r{bits:0{k}b}"
    states.append("exit")
    actions = ["north", "south", "east", "west", "sample"] + [f"check{r + 1}" for r in range(k)]
    return T, O, R, b0, states, actions, ["good", "bad"], term


def rocksample_model(n: int, k: int, seed: int = 0):
    """The POMDP container (terminal = the exit state)."""
    import scipy.sparse as sp

    from trimpomdp.pomdp.model import POMDP

    T, O, R, b0, states, actions, obs, term = rocksample_arrays(n, k, seed)
    S = len(states)
    Tm = [sp.csr_matrix((v, (r, c)), shape=(S, S)) for r, c, v in T]
    Om = [sp.csr_matrix((v, (r, c)), shape=(S, 2)) for r, c, v in O]
    terminal = np.zeros(S, bool)
    terminal[term] = True
    return POMDP.from_arrays(Tm, Om, R, DISCOUNT, b0, states, actions, obs, terminal=terminal,
                             name=f"RockSample_{n}_{k}")


def write_cassandra(n: int, k: int, path, seed: int = 0) -> Path:
    """Write the standard Cassandra text file (sparse entries only)."""
    T, O, R, b0, states, actions, obs, term = rocksample_arrays(n, k, seed)
    path = Path(path)
    with path.open("w") as f:
        f.write(f"# RockSample[{n},{k}] (Smith & Simmons 2004), written by trimpomdp bench/rocksample.py\n")
        f.write(f"discount: {DISCOUNT}\nvalues: reward\n")
        f.write("states: " + " ".join(states) + "\n")
        f.write("actions: " + " ".join(actions) + "\n")
        f.write("observations: " + " ".join(obs) + "\n")
        f.write("start: " + " ".join(f"{p:.10g}" for p in b0) + "\n\n")
        for a, (rows, cols, vals) in enumerate(T):
            for r, c, v in zip(rows, cols, vals):
                f.write(f"T: {actions[a]} : {states[r]} : {states[c]} {v:.10g}\n")
        for a, (rows, cols, vals) in enumerate(O):
            for r, c, v in zip(rows, cols, vals):
                f.write(f"O: {actions[a]} : {states[r]} : {obs[c]} {v:.10g}\n")
        nz = np.argwhere(R != 0)
        for s, a in nz:
            f.write(f"R: {actions[a]} : {states[s]} : * : * {R[s, a]:.10g}\n")
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", type=int)
    ap.add_argument("k", type=int)
    ap.add_argument("-o", "--output", default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = args.output or f"RockSample_{args.n}_{args.k}.pomdp"
    write_cassandra(args.n, args.k, out, args.seed)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
