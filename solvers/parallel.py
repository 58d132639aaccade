"""Run many independent solves: here one after another, on a local Dask cluster, or on a
running one. Knows nothing about what is solved: a picklable function and plain-data tasks.

Local clusters start one single-threaded worker process per ``workers``, so a solver inside a
task has one core and answers as it would serially. Results come back in task order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from solvers.extras import require

T = TypeVar("T")
R = TypeVar("R")


def run_all(function: Callable[[T], R], tasks: Sequence[T], scheduler: str | None = None, workers: int = 2,
            progress: Callable[[int, int, R], None] | None = None, connect_timeout: float = 5.0,
            by_value: Sequence[str] = ()) -> list[R]:
    """``[function(task) for task in tasks]``, computed where ``scheduler`` says.

    ``scheduler``: ``"serial"`` (here), None (a local Dask cluster of ``workers`` processes)
    or a Dask scheduler address such as ``tcp://host:8786``. ``progress(done, total, result)``
    is called as results arrive (in completion order; the returned list is in task order).
    ``by_value``: names of loaded modules whose classes travel with the tasks (cloudpickle's
    by-value pickling): modules the workers cannot import, such as one loaded from a file path.
    """
    if scheduler == "serial":
        results = []
        for task in tasks:
            results.append(function(task))
            if progress:
                progress(len(results), len(tasks), results[-1])
        return results
    distributed = require("dask.distributed", "sweep")
    if by_value:  # distributed pickles a task's nested classes by reference: send the tasks as bytes
        import functools
        import sys

        cloudpickle = require("cloudpickle", "sweep")
        for name in by_value:
            cloudpickle.register_pickle_by_value(sys.modules[name])
        tasks = [cloudpickle.dumps(task) for task in tasks]
        function = functools.partial(_call_pickled, function)
    Client, LocalCluster, as_completed = distributed.Client, distributed.LocalCluster, distributed.as_completed
    if scheduler is None:
        if workers < 1:
            raise ValueError(f"workers: must be at least 1, got {workers}")
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    else:
        try:  # a few seconds, not distributed's 30 s default: an unreachable address is a typo
            cluster, client = None, Client(scheduler, timeout=connect_timeout)
        except (OSError, TimeoutError) as error:
            raise ValueError(f"scheduler: cannot reach {scheduler} within {connect_timeout:g} s "
                             f"({type(error).__name__})") from None
    try:
        futures = client.map(function, list(tasks), pure=False)
        index = {future.key: i for i, future in enumerate(futures)}
        results: list[Any] = [None] * len(tasks)
        for done, future in enumerate(as_completed(futures), start=1):
            results[index[future.key]] = future.result()
            if progress:
                progress(done, len(tasks), results[index[future.key]])
        return results
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _call_pickled(function: Callable[[T], R], payload: bytes) -> R:
    """``function`` on a task that travelled as cloudpickle's bytes (``run_all``'s ``by_value``)."""
    return function(require("cloudpickle", "sweep").loads(payload))
