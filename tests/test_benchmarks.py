"""The benchmark runner cannot rot: its smallest quick case runs end to end and writes valid JSON."""

from __future__ import annotations

import json

import pytest

from benchmarks.cases import Goal, Row, Stats
from benchmarks.run import main, render_markdown, run_benchmarks, select_cases

TINY = {"sampling.batch": 4, "sampling.matmul_n": 128, "sampling.shape": [9, 32, 32], "sampling.process_n": 0}


def _check_stats(s: dict, n: int) -> None:
    assert s["n"] == n == len(s["values"])
    assert s["min"] <= s["q1"] <= s["median"] <= s["q3"] <= s["max"]
    assert s["median"] > 0


def test_quick_sampling_writes_json_and_table(tmp_path):
    pytest.importorskip("torch")
    results = run_benchmarks(["sampling"], quick=True, repeats=2, warmup=1, threads=1, out_dir=tmp_path,
                             sizes=TINY, log=lambda m: None)
    written = json.loads((tmp_path / "latest.json").read_text())
    assert written["schema"] == 1 and written["mode"] == "quick"
    machine = written["machine"]
    for key in ("cpu", "cores", "torch", "threads", "date", "git_commit"):
        assert key in machine
    assert machine["threads"] == 1
    assert list(written["cases"]) == ["sampling"]
    case = written["cases"]["sampling"]
    assert case["status"] == "ok", case.get("reason")
    rows = {r["unit"]: r for r in case["rows"]}
    vus = rows["VUs/s"]
    assert vus["reference_name"] == "pgan"
    _check_stats(vus["project"], 2)
    _check_stats(vus["reference"], 2)
    assert vus["ratio"] == pytest.approx(vus["project"]["median"] / vus["reference"]["median"])
    assert vus["goal"]["met"] == (vus["ratio"] >= 1.5)
    # achieved GFLOP/s is VUs/s × FLOPs per VU, repeat by repeat
    flops = vus["extra"]["flops_per_vu"]
    assert flops["pgan"] > flops["default"] > 0
    achieved = [r for r in case["rows"] if r["metric"] == "achieved compute while sampling"][0]
    assert achieved["project"]["values"] == pytest.approx(
        [v * flops["default"] / 1e9 for v in vus["project"]["values"]]
    )
    # the same numbers reach the markdown table
    md = (tmp_path / "latest.md").read_text()
    assert md == render_markdown(results)
    assert "| sampling | sampling 9×32×32, batch 4 (VUs/s)" in md
    assert f"{vus['ratio']:.2f}×" in md


def test_unavailable_and_goals_are_reported_not_invented():
    ok = Row(
        "x",
        "s",
        Stats.of([2.0, 4.0, 3.0]),
        Stats.of([1.0, 1.0, 1.0]),
        "ref",
        higher_is_better=False,
        goal=Goal("≤ 2.5 s", "<=", 2.5),
    )
    assert ok.ratio == pytest.approx(3.0)
    assert ok.to_json()["goal"]["met"] is False
    missing = Row.missing("warm page", "s", "chromium not found", goal=Goal("≤ 3 s", "<=", 3.0))
    assert missing.to_json()["goal"]["met"] is None and missing.ratio is None
    results = {
        "mode": "quick",
        "repeats": 3,
        "warmup": 1,
        "seconds": 1.0,
        "machine": {
            "cpu": "c",
            "cores": 2,
            "cores_usable": 2,
            "torch": "t",
            "threads": 1,
            "python": "3",
            "load_average": [0.1, 0.1, 0.1],
            "date": "d",
            "git_commit": "abc",
            "git_dirty": False,
        },
        "cases": {
            "dashboard": {"status": "ok", "reason": None, "rows": [ok.to_json(), missing.to_json()]},
            "evaluation": {"status": "unavailable", "reason": "no evaluation module", "rows": []},
        },
    }
    md = render_markdown(results)
    assert "unavailable: chromium not found" in md
    assert "unavailable: no evaluation module" in md
    assert "≤ 2.5 s: **NOT met**" in md
    assert "3.00×" in md


def test_case_selection():
    assert "quality" not in select_cases(None, long=False)
    assert select_cases(None, long=True)[-1] == "quality"
    assert select_cases(["data,sampling"], long=False) == ["sampling", "data"]
    with pytest.raises(ValueError, match="unknown case"):
        select_cases(["nope"], long=False)
    assert main(["--only", "nope"]) == 2


def test_whole_process_timer_reports_the_childs_peak_memory(tmp_path):
    import sys

    from benchmarks.cases.sampling import run_process

    code = "import numpy as np; a = np.ones(300 * 2**20 // 8); print(a.sum())"
    wall, mib, cpu = run_process([sys.executable, "-c", code], tmp_path)
    assert wall > 0 and cpu > 0 and 300 <= mib < 2000
    with pytest.raises(RuntimeError, match="exited 3"):
        run_process([sys.executable, "-c", "raise SystemExit(3)"], tmp_path)


def test_forward_floor_times_only_the_forward_of_n_vus(tmp_path):
    pytest.importorskip("torch")
    from benchmarks.forward_floor import main as floor_main
    from benchmarks.whole_process import FLOOR_FILE, arms
    from tests.test_sampling import trained

    trained(tmp_path / "g", "region")
    out = tmp_path / "floor.json"
    assert floor_main(["--n", "6", "--batch", "4", "--model", str(tmp_path / "g"), "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    assert (got["n"], got["batch"]) == (6, 4) and got["forward_cpu_s"] > 0 and got["forward_wall_s"] > 0
    named = arms(5, None, tmp_path)
    assert list(named) == ["ours", "reference", "floor"] and named["floor"][0][-1].endswith(FLOOR_FILE)
    assert "floor" not in arms(5, None, tmp_path, floor=False)
