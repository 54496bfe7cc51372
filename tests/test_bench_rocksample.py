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


def _check_entries(text: str, action: str) -> list[tuple[str, str]]:
    """(instance without the action, probability table) of every observation entry of ``action``."""
    obs = text[text.index("<ObsFunction>"):]
    return re.findall(rf"<Instance>{action} (.*?)</Instance>\s*<ProbTable>(.*?)</ProbTable>", obs)


def test_appl_quirk_checks_rock_one_for_rock_ten_and_nothing_else_changes():
    plain, quirk = pomdpx_text(11, 11), pomdpx_text(11, 11, appl_quirk=True)
    # SARSOP's RockSample_11_11.pomdpx: ac10 is a copy of ac1 (rock 1's variable and accuracies)
    assert _check_entries(quirk, "ac10") == _check_entries(quirk, "ac1")
    assert _check_entries(plain, "ac10") != _check_entries(plain, "ac1")
    # rock 10 is read by its own check in the plain file: '-' in the last rock column, rock 10's distances
    first = _check_entries(plain, "ac10")[0]
    assert first[0].split()[1:-1] == ["*"] * 10 + ["-"]
    assert first[1].split()[1] == repr(sensor_accuracy(11, 11, 0, 0, (9, 9)))
    # only the check of rock 10 differs
    strip = re.compile(r"<Instance>ac10 .*?</ProbTable>", re.S)
    assert strip.sub("", plain) == strip.sub("", quirk)
    assert pomdpx_text(7, 8, appl_quirk=True) == pomdpx_text(7, 8)  # fewer than 11 rocks: no effect
