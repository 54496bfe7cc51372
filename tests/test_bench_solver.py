"""The solver bench reads a local pomdpsol's progress table (its own time column, bounds per row)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))
_spec = importlib.util.spec_from_file_location("bench_solver", BENCH / "solver.py")
bench_solver = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_solver)

# pomdpsol 2.x output on the generated RockSample[11,11] (rows shortened)
OUTPUT = """
Loading the model ...
  input file   : /tmp/trimpomdp-bench/RockSample_11_11.pomdpx
  loading time : 51.00s

SARSOP initializing ...
  initialization time : 7.74s

-------------------------------------------------------------------------------
 Time   |#Trial |#Backup |LBound    |UBound    |Precision  |#Alphas |#Beliefs
-------------------------------------------------------------------------------
 7.74    0       0        5.98737    31.7579    25.7706     1952     1
 7.9     2       50       14.8868    30.0974    15.2106     171      28
 59.21   135     3951     20.7999    28.3051    7.50515     2328     1854
 60.28   137     4003     20.7999    28.2972    7.49728     2341     1876
-------------------------------------------------------------------------------

SARSOP finishing ...
  Preset timeout reached
  Timeout     : 60.000000s
  Actual Time : 60.280000s

-------------------------------------------------------------------------------
 Time   |#Trial |#Backup |LBound    |UBound    |Precision  |#Alphas |#Beliefs
-------------------------------------------------------------------------------
 60.32   137     4003     20.7999    28.2972    7.49728     2243     1876
-------------------------------------------------------------------------------
"""


def test_parse_pomdpsol_reads_every_progress_row_and_the_final_bounds():
    res = bench_solver.parse_pomdpsol(OUTPUT)
    assert [h["time"] for h in res["history"]] == [7.74, 7.9, 59.21, 60.28, 60.32]
    assert res["lower"] == 20.7999 and res["upper"] == 28.2972
    assert res["solve_seconds"] == 60.32 and res["load_seconds"] == 51.0
    assert bench_solver.time_to_reach(res["history"], 20.7999) == 59.21
    assert bench_solver.lower_at(res["history"], 8.0) == 14.8868


def test_parse_pomdpsol_refuses_output_without_a_table():
    with pytest.raises(ValueError, match="no progress rows"):
        bench_solver.parse_pomdpsol("Loading the model ...\nERROR: cannot open file\n")
