"""Executors: run a grid's :class:`RunSpec` s in local worker processes or on a Ray cluster.

An executor is a callable ``executor(specs)`` yielding ``(spec, result)`` as runs end, in
any order; ``result`` is the run's record (a dict) or a :class:`RunFailure`. Workers only
compute: they return records to the driver (:func:`~.grid.run_phase`), which writes the
files, logs W&B, retries failures once and keeps the progress bar, so workers need no
shared filesystem. Executors keep their workers between calls; :meth:`close` releases them.

- :func:`sequential_executor`: one run after the other in this process.
- :class:`LocalProcessExecutor`: ``workers`` spawned processes on this machine, each with
  ``torch.set_num_threads(threads_per_worker)`` (default: CPUs // workers, so the machine
  is not oversubscribed). A worker that dies (killed, out of memory, segfault) fails only
  the run it was executing; a new worker replaces it.
- :class:`RayExecutor`: every run is a Ray task with its own resource request
  (``num_cpus=cpus_per_run``, ``num_gpus=gpus_per_run``), on an existing cluster
  (``address``) or a local Ray instance. Ray is optional:
  ``pip install alpha-mas-avalanche[ray]``.

A missing dataset (:class:`~alpha_mas_avalanche.data.DatasetNotFoundError`) is not a
per-run failure: it stops the grid with its message, in the driver.
"""
from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import wait
from typing import Any

from alpha_mas_avalanche.data import DatasetNotFoundError
from alpha_mas_avalanche.experiment.config import ConfigError
from alpha_mas_avalanche.experiment.devices import default_local_workers, device_type, worker_device
from alpha_mas_avalanche.experiment.specs import RunSpec
from alpha_mas_avalanche.experiment.store import RunFailure
from alpha_mas_avalanche.experiment.train import execute_run
from alpha_mas_avalanche.validation import check_finite_float, check_positive_int

#: ``executor(specs)`` yields ``(spec, record or RunFailure)`` as runs end, in any order
#: (this module's contract).
Executor = Callable[[list[RunSpec]], Iterable[tuple[RunSpec, "dict | RunFailure"]]]


def sequential_executor(specs: list[RunSpec]) -> Iterator[tuple[RunSpec, dict | RunFailure]]:
    """Run specs one after the other in this process; a run that raises is a RunFailure
    (a missing dataset stops the grid instead)."""
    for spec in specs:
        spec.show_progress = True
        try:
            record = execute_run(spec)
        except DatasetNotFoundError:
            raise
        except Exception as err:  # noqa: BLE001 - recorded; the grid goes on
            yield spec, RunFailure(f"{type(err).__name__}: {err}", traceback.format_exc(),
                                   config_error=isinstance(err, ConfigError))
            continue
        yield spec, record


RAY_INSTALL_HINT = ("the Ray executor needs Ray: pip install 'alpha-mas-avalanche[ray]' "
                    "(or pip install 'ray[default]>=2.9')")


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _guarded_run(spec: RunSpec) -> tuple[str, Any]:
    """``("ok", record)``, ``("fatal", DatasetNotFoundError)`` or ``("error", RunFailure)``."""
    try:
        return "ok", execute_run(spec)
    except DatasetNotFoundError as err:
        return "fatal", err
    except Exception as err:  # noqa: BLE001 - any run error is recorded, the grid goes on
        return "error", RunFailure(f"{type(err).__name__}: {err}", traceback.format_exc(),
                                   config_error=isinstance(err, ConfigError))


def _result(status: str, payload: Any) -> dict | RunFailure:
    if status == "fatal":
        raise payload
    return payload


def _worker_main(conn, threads: int, setup: Callable[[], None] | None) -> None:
    """Worker loop: receive a spec, send back ``_guarded_run(spec)``; ``None`` ends it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's business
    # the driver still sees a daemon (it ends with the driver); inside, the flag is lifted
    # so that a run may start data-loader processes (CUDA runs do)
    multiprocessing.current_process().daemon = False
    import torch

    torch.set_num_threads(threads)
    try:
        if setup is not None:
            setup()
    except Exception:  # noqa: BLE001 - reported to the driver, which stops the grid
        conn.send(("startup", traceback.format_exc()))
        return
    conn.send(("ready", None))
    while True:
        try:
            spec = conn.recv()
        except (EOFError, OSError):  # the driver is gone
            return
        if spec is None:
            return
        try:
            conn.send(_guarded_run(spec))
        except (BrokenPipeError, OSError):
            return


class _Worker:
    def __init__(self, context, threads: int, setup) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child, threads, setup),
                                       daemon=True, name="alpha-mas-worker")
        self.process.start()
        child.close()
        self.spec: RunSpec | None = None
        self.index = 0  # the order it was started in (its GPU, see worker_device)
        self.ready = False

    def stop(self, terminate: bool) -> None:
        if terminate:
            self.process.terminate()
        else:
            try:
                self.conn.send(None)
            except OSError:
                self.process.terminate()
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


class LocalProcessExecutor:
    """Run specs in ``workers`` local processes (default: one per CPU; on CUDA see
    :func:`~.devices.default_local_workers`: up to 4 per GPU).

    Args:
        workers: processes running at once.
        device: the grid's device; ``cuda`` is spread over the GPUs, worker ``k`` running
            its runs on ``cuda:<k mod GPUs>`` (an explicit ``cuda:<index>`` is kept).
        threads_per_worker: torch threads in each (default: CPUs // workers, at least 1).
        setup: picklable callable run once in each worker before any run, e.g. to
            register extra methods (a ``register(...)`` at the top level of the main
            script is re-run in spawned workers anyway).
        start_method: multiprocessing start method; ``"spawn"`` (default) is safe with
            torch's thread pools, ``"fork"`` after torch has run threads is not.
    """

    def __init__(self, workers: int | None = None, threads_per_worker: int | None = None,
                 setup: Callable[[], None] | None = None, start_method: str = "spawn",
                 device: str = "cpu") -> None:
        cpus = available_cpus()
        self.device = device
        self.gpu_count = 0
        if device_type(device) == "cuda":
            import torch

            self.gpu_count = torch.cuda.device_count()
        if workers is None:
            workers = default_local_workers(device, cpus)
        self.workers = check_positive_int("workers", workers)
        self.threads_per_worker = check_positive_int(
            "threads_per_worker",
            threads_per_worker if threads_per_worker is not None else max(1, cpus // self.workers))
        self.setup = setup
        self._context = multiprocessing.get_context(start_method)
        self._idle: list[_Worker] = []
        self._started = 0
        self.running = 0

    def __call__(self, specs: list[RunSpec]) -> Iterator[tuple[RunSpec, dict | RunFailure]]:
        queue = deque(specs)
        busy: list[_Worker] = []

        def fill() -> None:
            while queue and len(busy) < self.workers:
                worker = self._idle.pop() if self._idle else self._new_worker()
                spec = queue.popleft()
                worker.spec = dataclasses.replace(
                    spec, show_progress=False,
                    device=worker_device(spec.device, worker.index, self.gpu_count))
                try:
                    worker.conn.send(worker.spec)
                except OSError:  # died while idle: the next wait() reports it
                    pass
                busy.append(worker)
            self.running = len(busy)

        try:
            fill()
            while busy:
                wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
                finished = []
                for worker in list(busy):
                    outcome = self._collect(worker)
                    if outcome is not None:
                        busy.remove(worker)
                        finished.append((worker.spec, outcome))
                fill()  # before handing results over: the workers never wait for the driver
                for spec, outcome in finished:
                    yield spec, _result(*outcome)
        finally:
            self.running = 0
            for worker in busy:  # interrupted: abandon the runs in flight
                worker.stop(terminate=True)

    def _new_worker(self) -> _Worker:
        worker = _Worker(self._context, self.threads_per_worker, self.setup)
        worker.index, self._started = self._started, self._started + 1
        return worker

    def _collect(self, worker: _Worker) -> tuple[str, Any] | None:
        """The worker's outcome if it has one (it is then idle again, or dead).

        A worker that cannot start (its setup raised, the main module is not import-safe)
        stops the grid: every run would fail the same way."""
        while worker.conn.poll():
            try:
                status, payload = worker.conn.recv()
            except (EOFError, OSError):
                break
            if status == "ready":
                worker.ready = True
                continue
            if status == "startup":
                raise RuntimeError(f"a worker process could not start:\n{payload}")
            self._idle.append(worker)
            return status, payload
        if worker.process.is_alive():
            return None
        worker.process.join(timeout=10)
        code = worker.process.exitcode
        worker.stop(terminate=True)
        reason = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        if not worker.ready:
            raise RuntimeError(
                f"a worker process exited while starting ({reason}); its error is printed above "
                "(a script using workers must guard its entry point with "
                "'if __name__ == \"__main__\":')")
        return "error", RunFailure(f"worker process lost ({reason}) while running {worker.spec.run_id}",
                                   worker_lost=True)

    def close(self) -> None:
        """Stop the idle workers."""
        while self._idle:
            self._idle.pop().stop(terminate=False)

    def __enter__(self) -> LocalProcessExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def import_ray():
    """``ray``, or an ImportError saying how to install it."""
    try:
        import ray
    except ImportError as err:
        raise ImportError(RAY_INSTALL_HINT) from err
    return ray


def _ray_task(spec: RunSpec, threads: int, setup: Callable[[], None] | None) -> tuple[str, Any]:
    import torch

    torch.set_num_threads(threads)
    if setup is not None:
        setup()
    spec.show_progress = False
    return _guarded_run(spec)


class RayExecutor:
    """Run every spec as a Ray task reserving ``cpus_per_run`` CPUs and ``gpus_per_run`` GPUs.

    Args:
        address: Ray cluster address (``"auto"``, ``"ray://head:10001"``, ...); ``None``
            connects to ``$RAY_ADDRESS`` if set, else starts a local Ray instance (shut
            down again by :meth:`close`). An already initialised Ray session is reused.
        cpus_per_run: CPUs reserved per run (Ray's ``num_cpus``; fractions allowed).
        gpus_per_run: GPUs reserved per run (``num_gpus``; e.g. 0.25 puts four runs on a
            GPU). Ray hides the GPUs from a task that reserves none, so runs with
            ``device="cuda"`` need ``gpus_per_run > 0``.
        threads: torch threads per run (default: ``max(1, int(cpus_per_run))``).
        setup: picklable callable run in the task before each run (must be idempotent).
        init_kwargs: more keyword arguments for ``ray.init`` (e.g. ``runtime_env``).

    Every node needs this package (and the dataset under the same ``data_root``); results
    come back to the driver, so nodes need no shared filesystem.
    """

    def __init__(self, address: str | None = None, cpus_per_run: float = 1.0,
                 gpus_per_run: float = 0.0, threads: int | None = None,
                 setup: Callable[[], None] | None = None,
                 init_kwargs: dict[str, Any] | None = None) -> None:
        self.ray = import_ray()
        self.address = address
        self.cpus_per_run = check_finite_float("cpus_per_run", cpus_per_run, positive=True)
        self.gpus_per_run = check_finite_float("gpus_per_run", gpus_per_run, non_negative=True)
        self.threads = check_positive_int(
            "threads", threads if threads is not None else max(1, int(cpus_per_run)))
        self.setup = setup
        self.init_kwargs = dict(init_kwargs or {})
        self._started = False
        self.running = 0

    def _ensure_ray(self) -> None:
        if self.ray.is_initialized():
            return
        self.ray.init(address=self.address, **{"include_dashboard": False, **self.init_kwargs})
        self._started = True

    def _capacity(self) -> int:
        """Runs the cluster can hold at once, for the progress bar."""
        resources = self.ray.cluster_resources()
        slots = resources.get("CPU", 0.0) / self.cpus_per_run
        if self.gpus_per_run:
            slots = min(slots, resources.get("GPU", 0.0) / self.gpus_per_run)
        return max(int(slots), 1)

    def __call__(self, specs: list[RunSpec]) -> Iterator[tuple[RunSpec, dict | RunFailure]]:
        self._ensure_ray()
        ray = self.ray
        task = ray.remote(_ray_task).options(
            num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run, max_retries=0,
            name="alpha-mas-run")
        pending = {task.remote(spec, self.threads, self.setup): spec for spec in specs}
        try:
            while pending:
                self.running = min(len(pending), self._capacity())
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                spec = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayError as err:  # worker died, node lost, OOM, ...
                    outcome = "error", RunFailure(
                        f"Ray task lost: {type(err).__name__}: {str(err).splitlines()[0]}",
                        str(err), worker_lost=True)
                self.running = min(len(pending), self._capacity())
                yield spec, _result(*outcome)
        finally:
            self.running = 0
            for ref in pending:  # interrupted: cancel what is queued or running
                ray.cancel(ref, force=True)

    def close(self) -> None:
        """Shut down the local Ray instance if this executor started it."""
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()
        self._started = False

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

