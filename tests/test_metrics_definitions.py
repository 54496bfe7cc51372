"""The routing metrics of docs/metrics.md against hand-computed values (PGR, IBC, Delta-IBC mean / max /
front average, CPT interpolated on the Pareto front, 'not reached'), plus properties of the front."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

from trimpomdp.routing import metrics as M
from trimpomdp.routing.report import family_table

AW, AS, CS = 0.4, 0.8, 100.0  # cheap-only accuracy, strong-only accuracy and strong tokens
BASE = (AS - AW) / CS  # IBC of the strong-only point: 0.004


def test_point_metrics_known_values():
    assert M.pgr(0.6, AW, AS) == pytest.approx(0.5)
    assert M.ibc(0.6, 30, AW) == pytest.approx(0.2 / 30)
    assert M.delta_ibc(0.6, 30, AW, AS, CS) == pytest.approx((0.2 / 30 - 0.004) / 0.004)  # 2/3
    assert M.delta_ibc(AS, CS, AW, AS, CS) == pytest.approx(0.0)  # the strong-only point itself
    # no extra cost: no IBC; a strong model no better than the cheap one: nothing is defined
    assert math.isnan(M.ibc(0.5, 0, AW))
    assert math.isnan(M.delta_ibc(0.6, 30, 0.5, 0.5, CS))
    assert math.isnan(M.cpt([0, 30], [0.5, 0.6], 0.5, 0.5, CS, 0.5))
    assert math.isnan(M.front_delta_ibc([0, 30], [0.5, 0.6], 0.5, 0.4, CS)[0])


def test_pareto_front_drops_dominated_points():
    c, a = M.pareto_front([100, 0, 60, 50, 100, 70], [0.65, 0.4, 0.5, 0.6, 0.7, 0.6])
    assert c.tolist() == [0, 50, 100] and a.tolist() == [0.4, 0.6, 0.7]


def test_cpt_interpolates_the_pareto_front():
    costs, accs = [0, 50, 60, 100], [0.4, 0.6, 0.5, 0.7]
    # PGR 0.625 = accuracy 0.65, halfway from (50, 0.6) to (100, 0.7) on the front: cost 75 of 100. The
    # dominated (60, 0.5) is not on it (a running-maximum envelope through it would give 80).
    assert M.cpt(costs, accs, AW, AS, CS, 0.625) == pytest.approx(0.75)
    assert M.cpt(costs, accs, AW, AS, CS, 0.5) == pytest.approx(0.5)  # exactly at the (50, 0.6) point
    assert M.cpt(costs, accs, AW, AS, CS, 0.25) == pytest.approx(0.25)  # on the segment from the origin
    # without the cheap-only origin a level below the first point costs that point's cost
    assert M.cpt([20, 40], [0.6, 0.7], AW, AS, CS, 0.25) == pytest.approx(0.2)
    # the front tops out at 0.7 = PGR 0.75: PGR 0.8 and 0.95 are not reached
    assert math.isnan(M.cpt(costs, accs, AW, AS, CS, 0.8))
    cm = M.curve_metrics(costs, accs, AW, AS, CS)
    assert cm["cpt_not_reached"] == ["cpt80", "cpt95"] and cm["max_pgr"] == pytest.approx(0.75)
    assert cm["cpt50"] == pytest.approx(0.5)
    js = M.jsonable(cm)
    assert js["cpt80"] is None and js["cpt95"] is None
    text = family_table({"threshold": js}, "delta_ibc_points", count_label="points")
    assert text.count("not reached") == 2 and "nan" not in text.lower() and "50.0%" in text


def test_delta_ibc_mean_max_and_front_average():
    # three operating points (and the cheap-only origin, which has no IBC)
    costs, accs = [0, 30, 60, 40], [AW, 0.6, 0.7, 0.7]
    per_point = [(0.2 / 30 - BASE) / BASE, (0.3 / 60 - BASE) / BASE, (0.3 / 40 - BASE) / BASE]  # 2/3, 1/4, 7/8
    cm = M.curve_metrics(costs, accs, AW, AS, CS)
    assert cm["delta_ibc_points"] == 3
    assert cm["delta_ibc_mean"] == pytest.approx(sum(per_point) / 3)  # 0.5972
    assert cm["delta_ibc_max"] == pytest.approx(0.875) == cm["best_delta_ibc"]
    # one point (50, 0.7): the front from (0, 0.4) is a line of slope 0.3/50 = 0.006 per token, so every
    # PGR level up to 0.75 has IBC 0.006 and Delta-IBC 0.5; levels 0.76..1 are not reached
    mean, reached = M.front_delta_ibc([0, 50], [AW, 0.7], AW, AS, CS)
    assert reached == 75 and mean == pytest.approx(0.5)
    # two segments: levels 0.01..0.5 lie on (0, .4)-(30, .6) [Delta-IBC 2/3], 0.51..0.75 on (30, .6)-(60, .7)
    levels = np.arange(51, 76) / 100
    seg2 = [(p * 0.4 / (30 + 30 * (p * 0.4 - 0.2) / 0.1) - BASE) / BASE for p in levels]
    mean, reached = M.front_delta_ibc([0, 30, 60], [AW, 0.6, 0.7], AW, AS, CS)
    assert reached == 75 and mean == pytest.approx((50 * 2 / 3 + sum(seg2)) / 75)


# strong tokens per question and accuracy (as a share of 200 questions): the grids real runs live on
points = st.lists(st.tuples(st.integers(0, 5000).map(lambda k: k / 10), st.integers(0, 200).map(lambda k: k / 200)),
                  min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(points)
@example([(10.0, 0.5), (10.0, 0.7), (5.0, 0.6)])  # a tie in cost: the more accurate point is kept
def test_pareto_front_properties(pts):
    c, a = (np.array(x) for x in zip(*pts))
    fc, fa = M.pareto_front(c, a)
    assert np.all(np.diff(fc) > 0) and np.all(np.diff(fa) > 0)
    for ci, ai in pts:  # every point is matched or beaten by the front at no higher cost
        assert fa[fc <= ci].max() >= ai


@settings(max_examples=200, deadline=None)
@given(points, st.floats(0, 1), st.floats(0, 1))
def test_cpt_monotone_and_inverts_the_front(pts, l1, l2):
    c = np.array([0.0] + [p[0] for p in pts])
    a = np.array([AW] + [p[1] for p in pts])
    lo, hi = sorted((l1, l2))
    c_lo, c_hi = M.cpt(c, a, AW, AS, CS, lo), M.cpt(c, a, AW, AS, CS, hi)
    if math.isfinite(c_hi):  # a higher level never costs less; reaching it means reaching the lower one
        assert math.isfinite(c_lo) and c_lo <= c_hi + 1e-12
        fc, fa = M.pareto_front(c, a)
        target = AW + hi * (AS - AW)
        # the front at that cost is at the target accuracy (or the first point already beats it)
        acc_there = np.interp(c_hi * CS, fc, fa)
        assert acc_there >= target - 1e-9 and (acc_there <= target + 1e-9 or math.isclose(c_hi * CS, fc[0]))
    else:
        assert M.pgr(a.max(), AW, AS) < hi + 1e-12
    cm = M.curve_metrics(c, a, AW, AS, CS)
    if cm["delta_ibc_points"]:
        assert cm["delta_ibc_max"] >= cm["delta_ibc_mean"] - 1e-12
    assert 0 <= cm["front_levels_reached"] <= M.FRONT_LEVELS
