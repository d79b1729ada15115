"""Run a graph of tasks on a few worker threads, the task with the longest chain still ahead of it first.

An evaluation is a few dozen tasks (one classifier training per seed, the attack spaces, each control, ...), each
seeded on its own and run at one thread per library (:mod:`synthvu_core.evaluation.threads`), so what a task
computes does not depend on when or where it runs: the schedule decides only how long the evaluation takes.
:func:`run_tasks` starts a task once every task it waits on is done, always the ready task with the largest
:func:`remaining_path` (its expected cost plus the longest chain of tasks that wait on it: the classic list-
scheduling priority, which also starts the longest independent jobs first), on the calling thread and
``workers - 1`` helper threads; tasks that share an ``exclusive`` tag run one at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Task:
    """One unit of work: ``run()`` once every task named in ``after`` is done.

    ``cost`` is the expected CPU seconds (a scheduling hint only; it never changes what any task computes);
    ``stage`` the part of the work it belongs to, for its caller (timings, progress). Tasks with the same
    ``exclusive`` tag never run at once: code that holds the GIL throughout (umap-learn's numba kernels) runs no
    faster beside another such task than after it, and would keep the other worker from work that can overlap.
    """

    name: str
    run: Callable[[], Any]
    after: tuple[str, ...] = ()
    cost: float = 1.0
    stage: str | None = None
    exclusive: str | None = None


def check_graph(tasks: Sequence[Task]) -> None:
    """Raise ``ValueError`` on a repeated name, a task waiting on an unknown task, or a cycle."""
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ValueError(f"task names repeat: {sorted({n for n in names if names.count(n) > 1})}")
    known = set(names)
    for t in tasks:
        unknown = [a for a in t.after if a not in known]
        if unknown:
            raise ValueError(f"task {t.name!r} waits on unknown tasks {unknown}")
    remaining_path(tasks)  # raises on a cycle


def remaining_path(tasks: Sequence[Task]) -> dict[str, float]:
    """Per task: its cost plus the costliest chain of tasks that (directly or not) wait on it."""
    waiting: dict[str, list[str]] = {t.name: [] for t in tasks}
    for t in tasks:
        for a in t.after:
            waiting.setdefault(a, []).append(t.name)
    cost = {t.name: t.cost for t in tasks}
    out: dict[str, float] = {}
    visiting: set[str] = set()

    def path(name: str) -> float:
        if name in out:
            return out[name]
        if name in visiting:
            raise ValueError(f"the tasks wait on each other in a cycle through {name!r}")
        visiting.add(name)
        out[name] = cost.get(name, 0.0) + max((path(w) for w in waiting[name]), default=0.0)
        visiting.discard(name)
        return out[name]

    for t in tasks:
        path(t.name)
    return out


def priority_order(tasks: Sequence[Task]) -> list[str]:
    """Task names by :func:`remaining_path`, largest first (ties: the order given): the order one worker runs them
    in where every task is ready."""
    rank = remaining_path(tasks)
    index = {t.name: i for i, t in enumerate(tasks)}
    return sorted(index, key=lambda n: (-rank[n], index[n]))


class _Board:
    """The shared state of one run: what is done, running and ready; the first error."""

    def __init__(self, tasks: Sequence[Task]) -> None:
        self.tasks = {t.name: t for t in tasks}
        self.order = priority_order(tasks)
        self.waits = {t.name: set(t.after) for t in tasks}
        self.results: dict[str, Any] = {}
        self.running: set[str] = set()
        self.error: BaseException | None = None
        self.cond = threading.Condition()

    def next_task(self) -> Task | None:
        """The ready task of highest priority (blocks while none is ready); None when all is done or one failed."""
        with self.cond:
            while True:
                if self.error is not None or len(self.results) == len(self.tasks):
                    return None
                held = {self.tasks[r].exclusive for r in self.running} - {None}
                for name in self.order:
                    if (name not in self.results and name not in self.running and not self.waits[name]
                            and self.tasks[name].exclusive not in held):
                        self.running.add(name)
                        return self.tasks[name]
                if not self.running:  # nothing ready, nothing running: cannot happen after check_graph
                    self.error = RuntimeError("no task is ready and none is running")
                    self.cond.notify_all()
                    return None
                self.cond.wait()

    def finish(self, task: Task, result: Any) -> None:
        with self.cond:
            self.running.discard(task.name)
            self.results[task.name] = result
            for w in self.waits.values():
                w.discard(task.name)
            self.cond.notify_all()

    def fail(self, task: Task, error: BaseException) -> None:
        with self.cond:
            self.running.discard(task.name)
            if self.error is None:
                self.error = error
            self.cond.notify_all()


def _work(board: _Board, started: Callable[[Task], None] | None) -> None:
    while (task := board.next_task()) is not None:
        try:
            if started is not None:
                started(task)
            result = task.run()
        except BaseException as e:  # noqa: BLE001 - handed to the caller of run_tasks, which re-raises it
            board.fail(task, e)
            return
        board.finish(task, result)


def run_tasks(
    tasks: Sequence[Task],
    *,
    workers: int = 2,
    started: Callable[[Task], None] | None = None,
    helper: Callable[[Callable[[], None]], None] | None = None,
) -> dict[str, Any]:
    """Run ``tasks`` on the calling thread and ``workers - 1`` helper threads; returns task name -> ``run()``'s value.

    Each worker takes the ready task of highest :func:`remaining_path` whenever it is free. ``started(task)`` is
    called by the worker that starts it, before it runs. ``helper(fn)`` runs a helper thread's loop ``fn`` (e.g.
    inside a thread setting; default: ``fn()``). The first task to raise stops every worker before its next task
    and is re-raised here once the helpers are done.
    """
    check_graph(tasks)
    board = _Board(tasks)

    def loop() -> None:
        if helper is None:
            _work(board, started)
            return
        try:
            helper(lambda: _work(board, started))
        except BaseException as e:  # noqa: BLE001 - a failing helper setting fails the run
            with board.cond:
                board.error = board.error or e
                board.cond.notify_all()

    threads = [threading.Thread(target=loop, name=f"evaluation-{i}", daemon=True) for i in range(1, max(1, workers))]
    for t in threads:
        t.start()
    try:
        _work(board, started)
    except BaseException as e:  # an interrupt in the caller: stop the helpers
        board.fail(Task("<caller>", lambda: None), e)
        raise
    finally:
        for t in threads:
            t.join()
    if board.error is not None:
        raise board.error
    return board.results
