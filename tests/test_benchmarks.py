"""The benchmark runner cannot rot: its smallest quick case runs end to end and writes valid JSON."""

from __future__ import annotations

import json
from pathlib import Path

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
    import torch

    from benchmarks.forward_floor import main as floor_main
    from benchmarks.whole_process import FLOOR_FILE, arms
    from tests.test_sampling import trained

    trained(tmp_path / "g", "region")
    out = tmp_path / "floor.json"
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert floor_main(["--n", "6", "--batch", "4", "--model", str(tmp_path / "g"), "--out", str(out)]) == 0
        assert torch.get_num_threads() == 2  # the caller's threads are restored
    finally:
        torch.set_num_threads(before)
    got = json.loads(out.read_text())
    assert (got["n"], got["batch"]) == (6, 4) and got["forward_cpu_s"] > 0 and got["forward_wall_s"] > 0
    assert got["threads"] == 1  # the floor's forward runs on one thread, whatever the caller's count
    named = arms(5, None, tmp_path)
    assert list(named) == ["ours", "reference", "floor"] and named["floor"][0][-1].endswith(FLOOR_FILE)
    assert "floor" not in arms(5, None, tmp_path, floor=False)


def _stub_cases(monkeypatch):
    """run_case stubbed out: the runner's bookkeeping without running a case; returns the names it was given."""
    import benchmarks.run as run

    seen: list[str] = []

    def fake(name, ctx):
        seen.append(name)
        return {"status": "ok", "reason": None, "rows": [], "seconds": 0.0}

    monkeypatch.setattr(run, "run_case", fake)
    return seen


def test_results_record_cases_sizes_and_seed(tmp_path, monkeypatch):
    _stub_cases(monkeypatch)
    sizes = {"data.volumes": 1, "evaluation.attack_sizes": [500]}
    results = run_benchmarks(["data,evaluation"], repeats=1, warmup=0, threads=1, out_dir=tmp_path, sizes=sizes,
                             seed=3, log=lambda m: None)
    written = json.loads((tmp_path / "latest.json").read_text())
    assert written["only"] == ["data", "evaluation"] and written["sizes"] == sizes and written["seed"] == 3
    md = (tmp_path / "latest.md").read_text()
    assert md == render_markdown(results)
    assert 'Cases: data, evaluation; size overrides: data.volumes=1, evaluation.attack_sizes=[500]; seed 3.' in md
    everything = run_benchmarks(None, repeats=1, warmup=0, threads=1, out_dir=tmp_path, log=lambda m: None)
    assert everything["only"] is None and everything["sizes"] == {} and everything["seed"] == 0
    assert "Cases: the default set; size overrides: none" in (tmp_path / "latest.md").read_text()


def test_quick_and_partial_runs_leave_the_full_runs_results_alone(tmp_path, monkeypatch):
    import benchmarks.run as run

    seen = _stub_cases(monkeypatch)
    full, quick = tmp_path / "results", tmp_path / "results" / "quick"
    monkeypatch.setattr(run, "RESULTS", full)
    monkeypatch.setattr(run, "QUICK_RESULTS", quick, raising=False)
    kw = {"repeats": 1, "warmup": 0, "threads": 1, "log": lambda m: None}
    run_benchmarks(None, quick=True, **kw)
    assert (quick / "latest.json").is_file() and not (full / "latest.json").exists()
    run_benchmarks(["data"], **kw)  # partial
    run_benchmarks(None, sizes={"data.volumes": 1}, **kw)  # not the full sizes
    assert not (full / "latest.json").exists()
    assert json.loads((quick / "latest.json").read_text())["sizes"] == {"data.volumes": 1}
    run_benchmarks(None, **kw)  # the full run
    assert json.loads((full / "latest.json").read_text())["mode"] == "full"
    assert seen[-len(select_cases(None, long=False)) :] == select_cases(None, long=False)
    run_benchmarks(["data"], quick=True, out_dir=full, **kw)  # --out is obeyed
    assert json.loads((full / "latest.json").read_text())["mode"] == "quick"


@pytest.mark.parametrize(
    ("argv", "kwargs", "message"),
    [
        (["--repeats", "0"], {"repeats": 0}, "--repeats must be at least 1"),
        (["--threads", "0"], {"threads": 0}, "--threads must be at least 1"),
        (["--threads", "-2"], {"threads": -2}, "--threads must be at least 1"),
        (["--warmup", "-1"], {"warmup": -1}, "--warmup must be 0 or more"),
        (["--size", "evaluation.reportz=0"], {"sizes": {"evaluation.reportz": 0}},
         "unknown size key evaluation.reportz; evaluation's keys:"),
        (["--size", "nocase.x=1"], {"sizes": {"nocase.x": 1}}, "unknown size key nocase.x; keys start with a case"),
    ],
)
def test_bad_options_are_refused_in_one_line(argv, kwargs, message, monkeypatch, capsys):
    import benchmarks.run as run

    def must_not_run(*a, **k):
        raise AssertionError("the benchmarks ran")

    monkeypatch.setattr(run, "run_benchmarks", must_not_run)
    monkeypatch.setattr(run, "run_case", must_not_run)
    assert main(["--only", "data", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("benchmarks: error: ") and message in err and err.count("\n") == 1
    monkeypatch.undo()  # the API refuses the same before running anything
    monkeypatch.setattr(run, "run_case", must_not_run)
    with pytest.raises(ValueError, match=message.split(";")[0]):
        run.run_benchmarks(["data"], log=lambda m: None, **kwargs)


def test_every_size_key_a_case_reads_is_declared():
    import re

    from benchmarks.cases import CASE_NAMES, size_keys

    declared = size_keys()
    root = Path(__file__).resolve().parents[1] / "benchmarks" / "cases"
    for name in CASE_NAMES:
        read = set(re.findall(r'\.size\(\s*"([^"]+)"', (root / f"{name}.py").read_text()))
        assert read, name
        assert read == {k for k, case in declared.items() if case == name}, name


def _eval_ctx(tmp_path, sizes):
    from benchmarks.cases import Context

    base = {"evaluation.shape": [1, 8, 8], "evaluation.candidates": 16}
    return Context(quick=False, long=False, repeats=1, warmup=0, threads=1, workdir=tmp_path, root=tmp_path,
                   sizes={**base, **sizes}, log=lambda m: None)


def test_attack_goals_only_at_their_own_sizes(tmp_path):
    pytest.importorskip("torch")
    from benchmarks.cases.evaluation import attack_rows

    one = attack_rows(_eval_ctx(tmp_path, {"evaluation.attack_sizes": [64]}))
    assert [r.metric for r in one] == ["pixel attack scores, 16 candidates × 64 synthetic"]  # no growth row
    assert one[0].goal is None  # not the goal's 2,000 candidates × 5k synthetic
    two = attack_rows(_eval_ctx(tmp_path, {"evaluation.attack_sizes": [64, 128]}))
    assert len(two) == 3 and two[-1].metric.startswith("attack time growth") and two[-1].project.n == 1
    assert all(r.goal is None for r in two)
    from benchmarks.cases.evaluation import attack_goals

    ratio, growth = attack_goals(2000, (9, 64, 64), [5000])
    assert ratio is not None and ratio.value == 1.2 and growth is None
    ratio, growth = attack_goals(2000, (9, 64, 64), [5000, 10000, 20000])
    assert ratio is not None and growth is not None and growth.value == pytest.approx(4.4)
    assert attack_goals(2000, (9, 32, 32), [5000, 20000]) == (None, None)
    assert attack_goals(200, (9, 64, 64), [5000, 20000]) == (None, None)
    assert attack_goals(2000, (9, 64, 64), [500, 1000, 2000]) == (None, None)


def test_child_processes_get_the_runs_threads(tmp_path, monkeypatch):
    import os
    import sys

    import benchmarks.cases.sampling as sampling
    from benchmarks.cases import Context

    code = "import os, sys; sys.exit(0 if os.environ['OMP_NUM_THREADS'] == os.environ['MKL_NUM_THREADS'] == '3' else 5)"
    three = {**os.environ, "OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3"}
    assert sampling.run_process([sys.executable, "-c", code], tmp_path, three)[0] > 0
    with pytest.raises(RuntimeError, match="exited 5"):
        sampling.run_process([sys.executable, "-c", code], tmp_path, {**three, "MKL_NUM_THREADS": "2"})
    envs: list[dict] = []

    def fake(cmd, cwd, env=None):
        envs.append(env)
        return 1.0, 100.0, 1.0

    monkeypatch.setattr(sampling, "run_process", fake)
    root = Path(__file__).resolve().parents[1]
    if not (root / "models" / "acgan-phantom" / "card.json").is_file():
        pytest.skip("acgan-phantom not shipped here")
    ctx = Context(quick=True, long=False, repeats=1, warmup=0, threads=3, workdir=tmp_path, root=root,
                  sizes={"sampling.process_n": 8, "sampling.process_repeats": 2, "sampling.process_n_large": 16},
                  log=lambda m: None)
    rows = sampling.process_rows(ctx)
    assert len(rows) == 4 and len(envs) == 5
    assert all(e is not None and e["OMP_NUM_THREADS"] == e["MKL_NUM_THREADS"] == "3" for e in envs)
    from benchmarks.cases import thread_env
    from benchmarks.whole_process import arms

    assert thread_env(4, {"PATH": "x"}) == {"PATH": "x", "OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "4"}
    named = arms(5, tmp_path, tmp_path, threads=2)
    assert {k: v[2]["OMP_NUM_THREADS"] for k, v in named.items()} == {
        "ours": "2", "before": "2", "reference": "2", "floor": "1"}


def test_dashboard_alternates_the_blank_app_with_the_project(tmp_path, monkeypatch):
    import contextlib

    import benchmarks.cases.dashboard as dash

    order: list[str] = []

    class Page:
        def __init__(self, name):
            self.name = name

        def locator(self, _):
            return type("L", (), {"count": lambda self: 0})()

    class Context:
        def __init__(self, name):
            self.name = name

        def new_page(self):
            return Page(self.name)

        def close(self):
            pass

    class Browser:
        made: list[str] = []

        def new_context(self, **_):
            return Context(self.made.pop(0))

    browser = Browser()

    @contextlib.contextmanager
    def serve(script, cwd, log, timeout=120.0, threads=None):
        assert threads == 2
        browser.made.append(script.name)
        yield f"http://{script.name}", 1

    def drawn_in(page, url=None):
        order.append(f"{page.name}:{'reload' if url is None else url.split('/', 3)[-1] or '/'}")
        return 1.0 if page.name == "app" else 0.5

    monkeypatch.setattr(dash, "serve", serve)
    monkeypatch.setattr(dash, "drawn_in", drawn_in)
    monkeypatch.setattr(dash, "page_paths", lambda page, base: ["/", "/b"])
    ours, ref, errors = dash.measure_app(browser, (Path("app"), tmp_path), (Path("blank"), tmp_path), tmp_path / "l",
                                         n_pages=None, cold_repeats=2, warm_repeats=2, threads=2)
    first_round = order[: len(order) // 2]
    assert first_round == ["app:/", "blank:/", "app:reload", "blank:reload", "blank:reload", "app:reload", "app:b",
                           "app:reload", "blank:reload", "blank:reload", "app:reload"]
    assert order[len(order) // 2 : len(order) // 2 + 2] == ["blank:/", "app:/"]  # the next round starts flipped
    assert {p: {k: len(v) for k, v in t.items()} for p, t in ours.items()} == {
        "/": {"cold": 2, "warm": 4}, "/b": {"cold": 2, "warm": 4}}
    assert len(ref["cold"]) == 2 and len(ref["warm"]) == 8 and set(ref["warm"]) == {0.5} and errors == {"/": 0, "/b": 0}
