"""The Dask launcher: a workflow's nodes compute on a ``dask.distributed`` cluster.

With no ``scheduler_address`` it starts a ``LocalCluster`` on this machine (``n_workers``
processes of ``threads_per_worker`` threads, ``memory_limit`` each); with one it connects to
a running cluster (``dask scheduler`` / ``dask worker`` on other machines). The driver stays
here: it computes keys, never submits a cached step, and submits independent steps together.
Only keys travel: each task is a pickled :class:`~qflow.runtime.task.NodeTask` whose worker
loads the inputs from the store and saves the outputs there, so the store must be reachable
from the workers (the project folder on one machine, a shared mount or an ``s3://`` URL).

The workflow file and the project's own modules are shipped by value (cloudpickle), so
workers that never saw the project can run its steps. Runtime info (progress, metrics) is
streamed back as Dask events while a step runs. A task whose worker dies is retried
(``retries``, 2 by default): outputs are published atomically, so nothing partial is seen.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import queue
import sys
import threading
import time
from typing import Any

from qflow.errors import ConfigError
from qflow.launchers.base import GraphLauncher
from qflow.runtime import info as runtime_info
from qflow.runtime.events import RunState
from qflow.runtime.task import NodeTask, TaskResult, run_node

PROGRESS_INTERVAL = 0.2  # seconds between two progress events of one bar from a worker


def _emitter(topic: str, node: str) -> Any:
    """A function that sends a step's runtime info from its worker to the driver."""
    from distributed import get_worker

    worker = get_worker()
    last: dict[str, float] = {}

    def emit(info: runtime_info.RuntimeInfo) -> None:
        if isinstance(info, runtime_info.Progress) and info.done != info.total:
            now = time.monotonic()
            if now - last.get(info.name, 0.0) < PROGRESS_INTERVAL:
                return
            last[info.name] = now
        worker.log_event(topic, {"node": node, "type": type(info).__name__,
                                 "fields": dataclasses.asdict(info)})

    return emit


def run_payload(payload: bytes, topic: str, *upstream: bytes) -> bytes:
    """Run a pickled task on a worker; return the pickled :class:`TaskResult`.

    ``upstream`` are the pickled results of the tasks this one was queued behind: if one of
    them did not run, neither does this task (``skipped``).
    """
    import cloudpickle

    task: NodeTask = cloudpickle.loads(payload)
    for data in upstream:
        before: TaskResult = cloudpickle.loads(data)
        if before.status != "ran":
            return cloudpickle.dumps(TaskResult(node=task.node, status="skipped",
                                                damaged=before.node))
    result = run_node(task, emit=_emitter(topic, task.node))
    try:
        return cloudpickle.dumps(result)
    except Exception:  # the user's exception does not pickle: its traceback text stays
        result.exception = None
        return cloudpickle.dumps(result)


def _ship_project(root: Any) -> None:
    """Make cloudpickle send workflow files and the project's own packages by value."""
    import cloudpickle

    from qflow.graph.fingerprint import FILE_MODULE_PREFIX, is_library

    base = os.path.realpath(root) + os.sep if root is not None else None
    tops = set()
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if name.startswith(FILE_MODULE_PREFIX) or (
                base and file and os.path.realpath(file).startswith(base)
                and not is_library(module)):
            tops.add(name.split(".")[0])
    tops -= {"__main__", "qflow", "jupyter_ext", *cloudpickle.list_registry_pickle_by_value()}
    for top in sorted(tops):
        if top in sys.modules:
            cloudpickle.register_pickle_by_value(sys.modules[top])


class _Runner:
    """Submits node tasks to the cluster and collects their results and events.

    Finished futures and runtime info events arrive on one queue (from Dask's threads), which
    the driver's thread empties: observers are only ever called from the driver's thread.
    """

    in_process = False

    def __init__(self, launcher: DaskLauncher) -> None:
        self.launcher = launcher
        self.client: Any = None
        self.inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.topic = ""
        self._on_info: Any = None
        self._nodes: dict[str, str] = {}  # future key -> node id, while in flight
        self._futures: dict[str, Any] = {}  # future key -> future, while in flight
        self._count = itertools.count()  # a resubmitted task needs a new key
        self._metrics: dict[str, int] = {}  # node id -> metrics delivered live

    def start(self, run: RunState, on_info: Any) -> None:
        self.client = self.launcher.client()
        self.topic = f"qflow-{run.run_id}"
        self._on_info = on_info
        self.client.subscribe_topic(self.topic, lambda event: self.inbox.put(("info", event[1])))
        _ship_project(self.launcher.paths.root)

    def submit(self, task: NodeTask, after: list[Any]) -> Any:
        import cloudpickle

        future = self.client.submit(run_payload, cloudpickle.dumps(task), self.topic, *after,
                                    key=f"qflow-{task.node}-{task.run_id}-{next(self._count)}",
                                    retries=self.launcher.retries, pure=False)
        self._nodes[future.key] = task.node
        self._futures[future.key] = future
        future.add_done_callback(lambda f: self.inbox.put(("done", f)))
        return future

    def _info(self, event: dict[str, Any]) -> None:
        node = event.get("node")
        if node not in self._nodes.values():
            return  # late news of a step that already finished
        cls = getattr(runtime_info, str(event.get("type")), None)
        if isinstance(cls, type) and issubclass(cls, runtime_info.RuntimeInfo):
            if cls is runtime_info.Metric:
                self._metrics[node] = self._metrics.get(node, 0) + 1
            self._on_info(node, cls(**event["fields"]))

    def _result(self, future: Any) -> TaskResult:
        import cloudpickle

        node = self._nodes.pop(future.key)
        self._futures.pop(future.key, None)
        try:
            result: TaskResult = cloudpickle.loads(future.result())
        except Exception as exc:  # the cluster could not run it (workers kept dying...)
            result = TaskResult(node=node, status="failed",
                                message=f"Dask could not run it: {type(exc).__name__}: {exc}",
                                hint="Look at the workers' logs; a worker killed again and "
                                     "again (out of memory?) fails the step.")
        for metric in result.metrics[self._metrics.pop(node, 0):]:  # overtaken by the result
            self._on_info(node, runtime_info.Metric(**metric))
        return result

    def wait(self) -> list[TaskResult]:
        done: list[TaskResult] = []
        block = True
        while True:
            try:
                kind, item = self.inbox.get(block=block)
            except queue.Empty:
                return done
            if kind == "info":
                self._info(item)
            elif item.key in self._nodes:
                done.append(self._result(item))
                block = False  # take whatever else is ready, then return

    def stop(self) -> None:
        if self.client is None:
            return
        if self._futures:
            self.client.cancel(list(self._futures.values()), force=True)
        self._nodes.clear()
        self._futures.clear()
        self.client.unsubscribe_topic(self.topic)


class DaskLauncher(GraphLauncher):
    """Computes a workflow's nodes on a Dask cluster, a local one by default.

    Settings (``configs/launcher/dask.yaml``): ``scheduler_address`` (``tcp://HOST:PORT``;
    empty for a ``LocalCluster``), ``n_workers``, ``threads_per_worker``, ``memory_limit``
    (for a local cluster), ``retries`` (per task, default 2), ``connect_timeout`` (seconds).
    """

    name = "dask"

    def __init__(self, paths: Any = None, *, scheduler_address: str | None = None,
                 n_workers: int = 2, threads_per_worker: int = 1,
                 memory_limit: str | int | None = "auto", retries: int = 2,
                 connect_timeout: float = 5.0, **kwargs: Any) -> None:
        super().__init__(paths, **kwargs)
        self.scheduler_address = scheduler_address or None
        self.n_workers = n_workers
        self.threads_per_worker = threads_per_worker
        self.memory_limit = memory_limit
        self.retries = retries
        self.connect_timeout = connect_timeout
        self._client: Any = None
        self._cluster: Any = None
        self._lock = threading.Lock()  # parallel tuning trials share one launcher

    def client(self) -> Any:
        """The client of the cluster, connected (or the local cluster started) on first use."""
        with self._lock:
            if self._client is None:
                self._connect()
            return self._client

    def _connect(self) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError("The dask launcher needs dask.distributed, which is not installed.",
                              hint="pip install 'qflow[dask]'") from None
        if self.scheduler_address:
            try:
                self._client = Client(self.scheduler_address, timeout=self.connect_timeout)
            except (OSError, TimeoutError) as exc:
                raise ConfigError(
                    f"Cannot reach the Dask scheduler at {self.scheduler_address}: {exc}.",
                    hint="Start it with `dask scheduler` (and workers with `dask worker "
                         "ADDRESS`), or fix launcher.scheduler_address; leave it empty to "
                         "start a local cluster.") from None
        else:
            import logging

            self._cluster = LocalCluster(n_workers=self.n_workers,
                                         threads_per_worker=self.threads_per_worker,
                                         memory_limit=self.memory_limit, processes=True,
                                         dashboard_address=None, silence_logs=logging.ERROR)
            self._client = Client(self._cluster)

    def runner(self, store: Any) -> _Runner:  # noqa: D102
        return _Runner(self)

    def close(self) -> None:
        """Disconnect from the cluster (and stop the local cluster this launcher started)."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
