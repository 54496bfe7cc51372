"""The bench's RockSample generator writes SARSOP's layout: the shared RockSample_7_8.pomdpx, byte for byte."""
from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from rocksample import pomdpx_text, sensor_accuracy  # noqa: E402


def _without_description(text: str) -> str:
    return re.sub(r"<Description>.*?</Description>", "", text, flags=re.S)


def test_generator_reproduces_the_shared_rocksample_7_8(pomdp_dir):
    shared = (pomdp_dir / "RockSample_7_8.pomdpx").read_text(encoding="latin-1")
    ours = pomdpx_text(7, 8)
    assert _without_description(ours) == _without_description(shared)
    assert "Rock7 is at (1,6)" in ours and "Robot's initial position is at (0 3)." in ours


def test_sensor_accuracy_known_values():
    # rock 0 of [7,8] sits at (2, 0): 2 cells away from (0, 0), d0 = 20 -> (1 + 2^-0.1) / 2
    assert sensor_accuracy(7, 8, 0, 0, (2, 0)) == 0.966516
    assert sensor_accuracy(7, 8, 2, 0, (2, 0)) == 1.0
    assert sensor_accuracy(4, 4, 0, 0, (4, 0)) == 0.75  # zmdp's d0 = 4 on [4,4]: 2^-1
