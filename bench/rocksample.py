"""RockSample[n, k] (Smith & Simmons, UAI 2004) as SARSOP writes it: a factored ``.pomdpx`` file with the rover
position fully observed, its flat POMDP, or a Cassandra ``.pomdp`` file.

The layout, rules and numbers are those of the ``RockSample_7_8.pomdpx`` / ``RockSample_11_11.pomdpx``
examples of the SARSOP distribution (``write_pomdpx(7, 8)`` gives the shared file but for its
<Description>): state = rover position ``s<x><y>`` (x slowest) or the absorbing ``st``, times one good/bad
variable per rock (the rocks stay in the state at ``st``, where nothing earns anything); actions
``amn ame ams amw`` (north = y + 1, east = x + 1), ``ac0..ac<k-1>`` (check rock i), ``as`` (sample). Moving east
off the grid ends the episode with +10; the other walls and sampling a cell without a rock cost -100 and end
it; sampling a rock gives +10 if good, -10 if bad, and leaves it bad. Check i reports the true quality with
probability p = (1 + 2^(-d / d0)) / 2 rounded to 6 decimals, d the Euclidean distance, d0 the half-efficiency
distance (20, or zmdp's 4 on [4,4] and [5,5]); every other action observes ``ogood``. Discount 0.95; the rover
starts at (0, n // 2) with every rock good with probability 1/2. Rock layouts for (4,4), (5,5), (5,7),
(7,8), (11,11) are the standard ones; other (n, k) get a deterministic pseudo-random layout.

``--appl-quirk`` reproduces a slip of SARSOP's own generator, present in its ``RockSample_11_11.pomdpx``: the
check of rock i >= 10 reads the rock named by the first digit of i (``ac10`` is a copy of ``ac1``), so rock
10 can never be checked there. pomdpsol's published [11,11] figures are on that file; the default output
checks every rock, as the rules say.

Values are written as SARSOP's generator printed them (``%.15g``), so the files parse to the same numbers.

Usage: python bench/rocksample.py N K [-o FILE.pomdpx | FILE.pomdp] [--appl-quirk]
"""
from __future__ import annotations

import argparse
import math
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
#: sensor half-efficiency distance d0 per instance (20 in SARSOP's [7,8] and [11,11]; zmdp's 4 for the small
#: grids, whose SARSOP files are not at hand)
HALF_EFFICIENCY = {(4, 4): 4.0, (5, 5): 4.0}
DEFAULT_HALF_EFFICIENCY = 20.0
EXIT_REWARD = 10
ILLEGAL_PENALTY = -100
DISCOUNT = 0.95
MOVES = (("amn", 0, 1), ("ame", 1, 0), ("ams", 0, -1), ("amw", -1, 0))


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


def sensor_accuracy(n: int, k: int, x: int, y: int, rock) -> float:
    """P(check reports the true quality) from (x, y), rounded as SARSOP's files print it."""
    d = math.hypot(x - rock[0], y - rock[1])
    return round((1.0 + 2.0 ** (-d / half_efficiency_distance(n, k))) / 2.0, 6)


def _g(v: float) -> str:
    return "%.15g" % v


def checked_rock(i: int, appl_quirk: bool = False) -> int:
    """The rock that ``ac<i>`` checks: i, or with ``appl_quirk`` the first digit of i (SARSOP's file)."""
    return int(str(i)[0]) if appl_quirk else i


def pomdpx_text(n: int, k: int, seed: int = 0, appl_quirk: bool = False) -> str:
    """The ``.pomdpx`` document of RockSample[n, k] in SARSOP's layout (``appl_quirk``: see the module)."""
    start, rocks = layout(n, k, seed)
    pos = [f"s{x}{y}" for x in range(n) for y in range(n)]
    acts = [m for m, _, _ in MOVES] + [f"ac{i}" for i in range(k)] + ["as"]
    rock_at = {cell: i for i, cell in enumerate(rocks)}
    w = []
    w.append('<?xml version="1.0" encoding="ISO-8859-1"?>\n\n')
    w.append(f'<pomdpx version="1.0" id="RockSample{n}{k}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"\n'
             ' xsi:noNamespaceSchemaLocation="pomdpx.xsd">\n\n')
    where = " ".join(f"Rock{i} is at ({x},{y})" for i, (x, y) in enumerate(rocks))
    w.append(f"<Description>RockSample problem for map size {n} x {n}\n"
             f"Robot's initial position is at ({start[0]} {start[1]}).\n"
             f"Written by trimpomdp bench/rocksample.py in the layout of SARSOP's examples. {where} \n"
             "</Description>\n\n")
    w.append(f"<Discount>{DISCOUNT}</Discount>\n\n<Variable>\n\n")
    w.append('\t<StateVar vnamePrev="robot_0" vnameCurr= "robot_1" fullyObs="true">\n'
             f'\t\t<ValueEnum>{" ".join(pos)} st</ValueEnum>\n\t</StateVar>\n\n')
    for i in range(k):
        w.append(f'\t<StateVar vnamePrev="rock{i}_0" vnameCurr= "rock{i}_1" fullyObs="false">\n'
                 '\t\t<ValueEnum>bad good</ValueEnum>\n\t</StateVar>\n\n')
    w.append('\t<ObsVar vname="obs_sensor">\n\t\t<ValueEnum>ogood obad</ValueEnum>\n\t</ObsVar>\n\n')
    w.append(f'\t<ActionVar vname="action_robot">\n\t\t<ValueEnum>{" ".join(acts)}</ValueEnum>\n'
             '\t</ActionVar>\n\n\t<RewardVar vname="reward_robot"/>\n\n</Variable>\n\n')
    # initial belief: the start cell, every rock uniform
    w.append("<InitialStateBelief>\n")
    start_tab = ["0"] * (n * n + 1)
    start_tab[pos.index(f"s{start[0]}{start[1]}")] = "1"
    for var, tab in [("robot_0", " ".join(start_tab))] + [(f"rock{i}_0", "uniform") for i in range(k)]:
        w.append(f"\t<CondProb>\n\t\t<Var>{var}</Var>\n\t\t<Parent>null</Parent>\n"
                 '\t\t<Parameter type = "TBL">\n\t\t\t<Entry>\n\t\t\t\t<Instance>-</Instance>\n'
                 f"\t\t\t\t\t<ProbTable>{tab}</ProbTable>\n\t\t\t</Entry>\n\t\t</Parameter>\n\t</CondProb>\n\n")
    w.append("\n\n</InitialStateBelief>\n\n<StateTransitionFunction>\n\n")
    # the rover: one entry per (cell, action)
    w.append("\t<CondProb>\n\t\t<Var>robot_1</Var>\n\t\t<Parent>action_robot robot_0</Parent>\n"
             '\t\t<Parameter type="TBL">\n\n')

    def entry(inst, tab, tag="ProbTable"):
        w.append(f"\t\t\t<Entry>\n\t\t\t\t<Instance>{inst}</Instance>\n\t\t\t\t<{tag}>{tab}</{tag}>\n"
                 "\t\t\t</Entry>\n")

    for x in range(n):
        for y in range(n):
            here = f"s{x}{y}"
            for name, dx, dy in MOVES:
                nx, ny = x + dx, y + dy
                entry(f"{name} {here} {f's{nx}{ny}' if 0 <= nx < n and 0 <= ny < n else 'st'}", "1.0")
            for i in range(k):
                entry(f"ac{i} {here} {here}", "1.0")
            entry(f"as {here} {here if (x, y) in rock_at else 'st'}", "1.0")
    entry("* st st", "1.0")
    w.append("\n\t\t</Parameter>\n\t</CondProb>\n\n")
    # each rock keeps its quality but turns bad when sampled
    for i, (x, y) in enumerate(rocks):
        w.append(f"\t<CondProb>\n\t<Var>rock{i}_1</Var>\n\t\t<Parent>action_robot robot_0 rock{i}_0</Parent>\n"
                 '\t\t<Parameter type="TBL">\n\n')
        entry("* * - -", "1 0 0 1")
        entry(f"as s{x}{y} * -", "1 0")
        w.append("\n\t\t</Parameter>\n\t</CondProb>\n" + ("\n" if i < k - 1 else ""))
    w.append("</StateTransitionFunction>\n\n\n<ObsFunction>\n")
    rock_vars = " ".join(f"rock{i}_1" for i in range(k))
    w.append(f"\t<CondProb>\n\t\t<Var>obs_sensor</Var>\n\t\t<Parent>action_robot robot_1 {rock_vars}</Parent>\n"
             '\t\t<Parameter type="TBL">\n')
    stars = " ".join(["*"] * k)
    for name, _, _ in MOVES:
        entry(f"{name} * {stars} -", "1.0 0.0")
    for i in range(k):
        c = checked_rock(i, appl_quirk)
        rock = rocks[c]
        dims = " ".join("-" if j == c else "*" for j in range(k))
        for x in range(n):
            for y in range(n):
                p = sensor_accuracy(n, k, x, y, rock)
                entry(f"ac{i} s{x}{y} {dims} -", f"{_g(1 - p)} {_g(p)} {_g(p)} {_g(1 - p)}")
        entry(f"ac{i} st {stars} -", "1 0")
    entry(f"as * {stars} -", "1.0 0.0")
    w.append("\n\t\t</Parameter>\n\t</CondProb>\n</ObsFunction>\n\n")
    # rewards, one entry per non-zero (action, cell[, rock quality])
    rock_prev = " ".join(f"rock{i}_0" for i in range(k))
    w.append(f"<RewardFunction>\n\t<Func>\n\t\t<Var>reward_robot</Var>\n"
             f"\t\t<Parent>action_robot robot_0 {rock_prev}</Parent>\n"
             '\t\t<Parameter type= "TBL">\n\n')
    for x in range(n):
        for y in range(n):
            here = f"s{x}{y}"
            for name, dx, dy in MOVES:
                nx, ny = x + dx, y + dy
                if nx >= n:
                    entry(f"{name} {here} {stars}", str(EXIT_REWARD), "ValueTable")
                elif not (0 <= nx < n and 0 <= ny < n):
                    entry(f"{name} {here} {stars}", str(ILLEGAL_PENALTY), "ValueTable")
            r = rock_at.get((x, y))
            if r is None:
                entry(f"as {here} {stars}", str(ILLEGAL_PENALTY), "ValueTable")
            else:
                for quality, value in (("bad", -10), ("good", 10)):
                    inst = " ".join(quality if j == r else "*" for j in range(k))
                    entry(f"as {here} {inst}", str(value), "ValueTable")
    w.append("\t</Parameter>\n\t</Func>\n</RewardFunction>\n\n\n</pomdpx>\n")
    return "".join(w)


def write_pomdpx(n: int, k: int, path, seed: int = 0, appl_quirk: bool = False) -> Path:
    path = Path(path)
    path.write_text(pomdpx_text(n, k, seed, appl_quirk), encoding="latin-1")
    return path


def rocksample_momdp(n: int, k: int, seed: int = 0):
    """The MOMDP (position visible, rocks hidden)."""
    from trimpomdp.pomdp.pomdpx import parse_pomdpx

    return parse_pomdpx(pomdpx_text(n, k, seed), name=f"RockSample_{n}_{k}", momdp=True)


def rocksample_model(n: int, k: int, seed: int = 0):
    """The flat POMDP (the position folded into the observations, as the flat ``.pomdpx`` reader does)."""
    from trimpomdp.pomdp.pomdpx import parse_pomdpx

    return parse_pomdpx(pomdpx_text(n, k, seed), name=f"RockSample_{n}_{k}")


def write_cassandra(n: int, k: int, path, seed: int = 0) -> Path:
    """The flat model as a Cassandra ``.pomdp`` file."""
    from trimpomdp.pomdp.cassandra import write_pomdp

    return write_pomdp(rocksample_model(n, k, seed), Path(path))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", type=int)
    ap.add_argument("k", type=int)
    ap.add_argument("-o", "--output", default=None, help=".pomdpx (default) or .pomdp (flat, Cassandra)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--appl-quirk", action="store_true",
                    help="check rock i >= 10 as SARSOP's RockSample_11_11.pomdpx does (first digit of i)")
    args = ap.parse_args(argv)
    out = Path(args.output or f"RockSample_{args.n}_{args.k}.pomdpx")
    if out.suffix.lower() == ".pomdp":
        if args.appl_quirk:
            ap.error("--appl-quirk is for .pomdpx output")
        write_cassandra(args.n, args.k, out, args.seed)
    else:
        write_pomdpx(args.n, args.k, out, args.seed, args.appl_quirk)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
