"""Where students are graded: a pool of local worker processes, or a Dask cluster.

Either way each student is one task, :func:`worker.grade`, that returns its
result as data; results come back to the instructor's process, which alone
writes the gradebook. Local workers are forked from a server process that
imported nbgrader once (``forkserver`` with the worker module preloaded), so
a student costs no start-up. On a Dask cluster a worker that dies mid-task
costs a retry elsewhere (Dask reschedules its tasks); the ledger merges each
student's result once, so a retried task never doubles a grade.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from dlcourse.course.grading import events

OnResult = Callable[[events.Task, events.TaskResult | None, str], None]


def _failed(why: str) -> str:
    return f"the grader's worker failed while grading this student ({why}); run again to retry"


def local(bundle: events.Bundle, tasks: list[events.Task], workers: int,
          on_result: OnResult) -> None:  # fmt: skip
    """Grade ``tasks`` in ``workers`` local processes; ``on_result(task,
    result, problem)`` as each finishes. A worker process that dies (killed,
    out of memory) breaks the pool: its tasks are tried again in a new pool,
    and a task that breaks it twice is reported, not graded. A task that fails
    otherwise is reported too, and the rest of the class is graded."""
    from dlcourse.course.grading import worker

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["dlcourse.course.grading.worker"])
    queue, tries = list(tasks), dict.fromkeys((t.student for t in tasks), 0)
    while queue:
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            running: dict[Future, events.Task] = {}
            broken = False
            while (queue and not broken) or running:
                while queue and not broken and len(running) < workers:
                    task = queue.pop(0)
                    tries[task.student] += 1
                    running[pool.submit(worker.grade, bundle, task)] = task
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    task = running.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        broken = True
                        if tries[task.student] < 2:
                            queue.append(task)
                        else:
                            on_result(task, None, _failed("its process died twice"))
                    except worker.WorkerRefused as refused:
                        on_result(task, None, str(refused))
                    except Exception as error:  # the grader's fault, reported with its cause
                        on_result(task, None, _failed(f"{type(error).__name__}: {error}"))
                    else:
                        on_result(task, result, "")
    worker.sweep()


def dask(address: str, bundle: events.Bundle, tasks: list[events.Task],
         on_result: OnResult) -> None:  # fmt: skip
    """Grade ``tasks`` on the Dask cluster whose scheduler is at ``address``."""
    from distributed import Client, as_completed

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
            except Exception as error:  # the cluster gave up (KilledWorker, ...)
                on_result(task, None, _failed(f"{type(error).__name__}: {error}"))
            else:
                on_result(task, result, "")
        client.run(worker.sweep)  # on every worker: what a worker that died there left
