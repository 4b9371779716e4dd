"""Where students are graded: a pool of local worker processes, or a Dask cluster.

Either way each student is one task, :func:`worker.grade`, that returns its
result as data; results come back to the instructor's process, which alone
writes the gradebook. Local workers are forked from a server process that
imported nbgrader once (``forkserver`` with the worker module preloaded), so
a student costs no start-up. A worker that runs over the grader's time limit
for a student stops itself and says why (:mod:`watchdog`). On a Dask cluster
a worker that dies mid-task costs a retry elsewhere (Dask reschedules its
tasks); the ledger merges each student's result once, so a retried task
never doubles a grade.
"""

from __future__ import annotations

import multiprocessing
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from dlcourse.course.grading import events, watchdog

OnResult = Callable[[events.Task, events.TaskResult | None, str], None]


def _failed(why: str) -> str:
    return f"the grader's worker failed while grading this student ({why}); run again to retry"


class LocalWorkers:
    """``workers`` local processes, forked from a server that imported the
    worker module once. They start as soon as this is made, each making its
    folders (matplotlib's font cache), while the instructor's process reads
    the submissions and prepares the gradebook."""

    def __init__(self, workers: int):
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload(["dlcourse.course.grading.worker"])
        self.workers = workers
        self.reports = Path(tempfile.mkdtemp(prefix="dlcourse-reports-"))  # why a worker stopped
        self.pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        from dlcourse.course.grading import worker

        self.taken = 0  # tasks this pool has taken
        pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=self.context,
            initializer=watchdog.report_to,
            initargs=(str(self.reports),),
        )
        for _ in range(self.workers):
            pool.submit(worker.ready)
        return pool

    def run(self, bundle: events.Bundle, tasks: list[events.Task], on_result: OnResult) -> None:
        """Grade ``tasks``; ``on_result(task, result, problem)`` as each
        finishes. A worker process that dies breaks the pool, and with it
        every task under way. One that stopped itself over the time limit
        said for which student: that one is reported (not graded), and the
        others are graded again as before. One that died otherwise (killed,
        out of memory) said nothing, and every task under way becomes a
        suspect: suspects are graded again one at a time, alone in a new
        pool, so that only a task that breaks a pool by itself is reported,
        never one that happened to run beside it. A task that fails otherwise
        is reported too, and the rest of the class is graded."""
        from dlcourse.course.grading import worker

        queue, suspects = list(tasks), []
        running: dict[Future, events.Task] = {}
        alone: Future | None = None  # a suspect's task, running by itself
        while queue or suspects or running:
            refused = False  # the pool broke before taking a task, which stays where it was
            try:
                if suspects and not running:
                    alone = self.pool.submit(worker.grade, bundle, suspects[0])
                    running[alone] = suspects.pop(0)
                    self.taken += 1
                while not suspects and queue and len(running) < self.workers:
                    future = self.pool.submit(worker.grade, bundle, queue[0])
                    running[future] = queue.pop(0)
                    self.taken += 1
            except BrokenProcessPool as error:
                if not self.taken:  # a new pool that takes nothing: its workers cannot start
                    why = f"the grader's worker processes cannot start ({error})"
                    raise RuntimeError(why) from None
                refused = True
            finished = wait(running, return_when=FIRST_COMPLETED)[0] if running else set()
            broken: list[tuple[Future, events.Task]] = []
            for future in finished:
                task = running.pop(future)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    broken.append((future, task))
                except worker.WorkerRefused as error:
                    on_result(task, None, str(error))
                except Exception as error:  # the grader's fault, reported with its cause
                    on_result(task, None, _failed(f"{type(error).__name__}: {error}"))
                else:
                    on_result(task, result, "")
            if broken or refused:
                broken += running.items()  # the pool's other tasks are lost with it
                running.clear()
                # every worker gone before their files are read: none rewrites its own then
                self.pool.shutdown(wait=True, cancel_futures=True)
                stopped = watchdog.reports(self.reports)
                for future, task in broken:
                    if task.student in stopped:
                        on_result(task, None, stopped[task.student])
                    elif stopped:  # the culprit is known: the others are graded again
                        queue.insert(0, task)
                    elif future is alone:
                        on_result(task, None, _failed("its process died, grading it alone"))
                    else:
                        suspects.append(task)
                self.pool = self._start()

    def close(self) -> None:
        from dlcourse.course.grading import worker

        self.pool.shutdown(cancel_futures=True)
        shutil.rmtree(self.reports, ignore_errors=True)
        worker.sweep()


def dask(address: str, bundle: events.Bundle, tasks: list[events.Task],
         on_result: OnResult) -> None:  # fmt: skip
    """Grade ``tasks`` on the Dask cluster whose scheduler is at ``address``."""
    from distributed import Client, KilledWorker, as_completed

    from dlcourse.course.grading import worker

    with Client(address, set_as_default=False) as client:
        # the bundle as a task's result rather than scattered data: if every worker
        # holding it dies, the scheduler can make it again
        shared = client.submit(worker.receive, bundle, pure=False)
        futures = {}
        for task in tasks:
            future = client.submit(worker.grade, shared, task, retries=1, pure=False)
            futures[future] = task
        for future in as_completed(futures, loop=client.loop):
            task = futures[future]
            try:
                result = future.result()
            except worker.WorkerRefused as refused:
                on_result(task, None, str(refused))
            except KilledWorker:
                why = "each worker that graded it died (killed, out of memory, --grader-timeout)"
                on_result(task, None, _failed(why))
            except Exception as error:  # the cluster gave up otherwise
                on_result(task, None, _failed(f"{type(error).__name__}: {error}"))
            else:
                on_result(task, result, "")
        client.run(worker.sweep)  # on every worker: what a worker that died there left
