"""The evaluation's task scheduler: dependencies first, the longest remaining chain first, both workers busy."""

from __future__ import annotations

import threading
import time

import pytest

from synthvu_core.evaluation.schedule import Task, check_graph, priority_order, remaining_path, run_tasks


def _log_tasks(spec: dict[str, tuple[float, tuple[str, ...]]], log: list, sleep: float = 0.0) -> list[Task]:
    """Tasks named by ``spec`` (name -> (cost, after)) logging (name, thread, start, end), sleeping ``cost * sleep``."""
    t0 = time.perf_counter()

    def make(name: str, cost: float):
        def run():
            start = time.perf_counter() - t0
            time.sleep(cost * sleep)
            log.append((name, threading.current_thread().name, start, time.perf_counter() - t0))
            return name.upper()

        return run

    return [Task(n, make(n, c), after, c) for n, (c, after) in spec.items()]


def test_remaining_path_is_the_cost_plus_the_longest_chain_waiting():
    tasks = _log_tasks({"a": (1, ()), "b": (2, ("a",)), "c": (5, ("a",)), "d": (1, ("b", "c"))}, [])
    assert remaining_path(tasks) == {"a": 7, "b": 3, "c": 6, "d": 1}
    assert priority_order(tasks) == ["a", "c", "b", "d"]


def test_one_worker_runs_the_longest_chain_first_and_every_task_after_what_it_waits_on():
    log: list = []
    spec = {"short": (1, ()), "long": (9, ()), "head": (1, ()), "tail": (10, ("head",)), "last": (0, ("short",))}
    out = run_tasks(_log_tasks(spec, log), workers=1)
    assert out == {n: n.upper() for n in spec}
    order = [e[0] for e in log]
    assert order[:2] == ["head", "tail"], "the chain head -> tail (11 s ahead) before the 9 s task"
    assert order.index("long") < order.index("short") < order.index("last")


def test_two_workers_share_the_work_and_respect_dependencies():
    log: list = []
    spec = {f"job{i}": (float(i % 3 + 1), ()) for i in range(8)}
    spec["join"] = (1.0, tuple(spec))
    spec["after_join"] = (1.0, ("join",))
    run_tasks(_log_tasks(spec, log, sleep=0.01), workers=2)
    ends = {e[0]: e[3] for e in log}
    starts = {e[0]: e[2] for e in log}
    assert len({e[1] for e in log}) == 2, "both workers ran tasks"
    assert all(starts["join"] >= ends[f"job{i}"] for i in range(8))
    assert starts["after_join"] >= ends["join"]
    # the longest jobs start first: no 3-s job starts after a 1-s job
    first_short = min(starts[n] for n, (c, _) in spec.items() if c == 1.0 and n.startswith("job"))
    assert all(starts[n] <= first_short for n, (c, _) in spec.items() if c == 3.0)


def test_two_workers_balance_a_long_chain_beside_many_short_tasks():
    """What the evaluation needs: the chain (attack spaces -> privacy -> controls) starts at once, beside the
    trainings, and the makespan is near the ideal (half the total work), not the sum of the lanes."""
    log: list = []
    spec = {f"train{i}": (2.0, ()) for i in range(5)}  # listed first: in the given order they would go first
    spec.update({"spaces": (3.0, ()), "privacy": (4.0, ("spaces",)), "controls": (3.0, ("privacy",))})
    t0 = time.perf_counter()
    unit = 0.05
    run_tasks(_log_tasks(spec, log, sleep=unit), workers=2)
    wall = time.perf_counter() - t0
    assert {e[0]: e[2] for e in log}["spaces"] < unit, "the longest chain starts first"
    # ideal 10 units; the trainings first would take 14 (4 of them, then the chain beside the last)
    assert wall < unit * 12, f"{wall:.3f} s: the chain did not run beside the trainings"


def test_a_failing_task_stops_the_run_and_is_raised():
    ran: list[str] = []

    def boom():
        raise ValueError("broken task")

    tasks = [Task("bad", boom, cost=5), *(Task(f"t{i}", lambda i=i: ran.append(i), ("bad",)) for i in range(3))]
    with pytest.raises(ValueError, match="broken task"):
        run_tasks(tasks, workers=2)
    assert ran == [], "no task that waits on the failed one runs"


def test_a_helper_setting_wraps_the_helper_threads_loop():
    seen: list[str] = []

    def helper(loop):
        seen.append(threading.current_thread().name)
        loop()

    log: list = []
    run_tasks(_log_tasks({f"x{i}": (1.0, ()) for i in range(4)}, log, sleep=0.01), workers=2, helper=helper)
    assert seen == ["evaluation-1"] and len(log) == 4


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"a": ((), 1), "a2": (("b",), 1)}, "unknown"),
        ({"a": (("b",), 1), "b": (("a",), 1)}, "cycle"),
    ],
)
def test_a_broken_graph_is_refused(spec, message):
    tasks = [Task(n, lambda: None, after, cost) for n, (after, cost) in spec.items()]
    with pytest.raises(ValueError, match=message):
        check_graph(tasks)
    with pytest.raises(ValueError, match=message):
        run_tasks(tasks)


def test_repeated_names_are_refused():
    with pytest.raises(ValueError, match="repeat"):
        check_graph([Task("a", lambda: None), Task("a", lambda: None)])


def test_the_evaluation_graph_is_valid_and_starts_with_its_longest_chain():
    """The evaluation's own tasks: every dependency known, no cycle; with one worker the attack chain (the design,
    the attack spaces, privacy) comes before the last trainings; both privacy and the independent control wait on
    the joined attack spaces, the graded controls on privacy."""
    import numpy as np
    from evaluation_fixtures import structured_dataset

    from synthvu_core.evaluation import stages

    ds = structured_dataset(6)
    labels = np.maximum(ds.labels("region", ds.classes("region"))[:12], 0)
    job = stages.Job(ds, ds.images[:12], labels, None, stages.EvaluationConfig(), 0, {}, True)
    ctx = stages.basis_context(ds, job.config)
    tasks = stages.evaluation_tasks(ctx, job, ds)
    check_graph(tasks)
    after = {t.name: set(t.after) for t in tasks}
    assert after["privacy"] == {"attack_join"} and after["control:independent"] == {"attack_join"}
    assert all(after[n] == {"privacy"} for n in after if n.startswith("control:graded"))
    assert {f"tstr:{i}" for i in range(5)} <= after["utility"]
    order = priority_order(tasks)
    assert order[0] == "design" and order.index("privacy") < order.index("classifier:4")
    assert {t.stage for t in tasks} >= {name for name, _ in stages.STAGES}
    assert {t.name for t in tasks if t.exclusive == stages.UMAP_FIT} == {"overlay_fit", "attack_umap"}


def test_tasks_sharing_an_exclusive_tag_never_overlap_and_the_other_worker_takes_other_work():
    log: list = []
    t0 = time.perf_counter()

    def make(name):
        def run():
            start = time.perf_counter() - t0
            time.sleep(0.05)
            log.append((name, start, time.perf_counter() - t0))

        return run

    tasks = [Task("fit_a", make("fit_a"), cost=5, exclusive="umap"), Task("fit_b", make("fit_b"), cost=4,
             exclusive="umap"), Task("train", make("train"), cost=1)]
    run_tasks(tasks, workers=2)
    span = {n: (s, e) for n, s, e in log}
    assert span["fit_b"][0] >= span["fit_a"][1], "the second fit waits for the first"
    assert span["train"][0] < span["fit_a"][1], "meanwhile the other worker trains"
