"""`cutcore.precision`: the fp32/bf16/other-seed comparison, by hand and end to end on tiny data."""
from __future__ import annotations

import json

import pytest
from helpers import make_unpaired

from cutcore.precision import LOSSES, compare, main, markdown, summary

pytestmark = pytest.mark.usefixtures("one_thread")


def _log(values: list[float]) -> list[dict]:
    return [{"step": i + 1, **{k: v for k in LOSSES}} for i, v in enumerate(values)]


def test_compare_gaps_by_hand():
    rows = compare(_log([1, 3, 2, 2]), _log([1, 1, 2, 3]), _log([2, 2, 4, 4]), window=2)
    assert [r["steps"] for r in rows] == ["1-2", "3-4"]
    first = rows[0]["NCE"]
    assert (first["fp32"], first["bf16"], first["fp32_other_seed"]) == (2.0, 1.0, 2.0)
    assert first["bf16_gap"] == pytest.approx(0.5) and first["seed_gap"] == 0
    assert rows[1]["D"]["bf16_gap"] == pytest.approx(0.25) and rows[1]["D"]["seed_gap"] == pytest.approx(1.0)
    assert summary(rows)["G_GAN"] == {"bf16_gap": pytest.approx(0.375), "seed_gap": pytest.approx(0.5)}
    assert "bf16 37.5% · seed 50.0%" in markdown(rows).splitlines()[-1]


def test_end_to_end_reuses_finished_runs(tmp_path, capsys):
    data = make_unpaired(tmp_path / "data", n_a=3, n_b=3, size=(48, 48))
    args = ["--data", str(data), "--out", str(tmp_path / "out"), "--steps", "4", "--window", "2", "--ngf", "4",
            "--crop", "32"]
    assert main(args) == 0
    saved = json.loads((tmp_path / "out" / "precision.json").read_text())
    assert len(saved["rows"]) == 2 and set(saved["mean_gap"]) == set(LOSSES)
    assert (tmp_path / "out" / "precision.png").is_file()
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_dir()) == [
        "bf16-seed0", "fp32-seed0", "fp32-seed1"]
    step1 = {run: json.loads((tmp_path / "out" / run / "log.jsonl").read_text().splitlines()[0])
             for run in ("fp32-seed0", "bf16-seed0")}
    assert step1["bf16-seed0"]["precision"].startswith("bf16")
    for k in LOSSES:  # the same seed and data: close...
        assert step1["bf16-seed0"][k] == pytest.approx(step1["fp32-seed0"][k], rel=0.05)
    # ...but bf16 features move PatchNCE by ~1e-3 (D's and G_GAN's first values sit at the LSGAN targets)
    assert abs(step1["bf16-seed0"]["NCE"] / step1["fp32-seed0"]["NCE"] - 1) > 1e-4
    first = capsys.readouterr().out
    mtime = (tmp_path / "out" / "bf16-seed0" / "log.jsonl").stat().st_mtime
    assert main(args) == 0  # nothing retrained: same table
    assert capsys.readouterr().out == first
    assert (tmp_path / "out" / "bf16-seed0" / "log.jsonl").stat().st_mtime == mtime
    assert main([*args[:-4], "--ngf", "2", "--crop", "32"]) == 0  # another model: retrained, not reused
    assert (tmp_path / "out" / "bf16-seed0" / "log.jsonl").stat().st_mtime != mtime
