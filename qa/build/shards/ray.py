"""Ray engine: ``qa build --engine ray`` -- every source file made into a shard by a Ray worker, then one index.

Source files are the unit of work. Each Ray worker (an actor, so the encoder loads once per worker)
parses, chunks and embeds whole files with the model, backend and chunking a local build would use,
and writes one shard per file (``qa.shards``): named by the file's bytes and the settings, renamed into
place complete. A rerun skips complete shards and redoes unfinished ones; a worker that dies has its
file handed to another worker (``_Workers``; a new one replaces the dead), and the retry writes a fresh
shard, so none is half-written or made twice. A node lost mid-build is such a death: its files are made
on the nodes that are left. Then ``index_from_shards`` makes the index in source order.

Without an address a local Ray instance is started (and stopped); with one, the cluster's nodes must
have this package installed and see the source files and the shard folder at the same paths.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...embed import Embedder, canonical_model_name, is_exported
from ...embed.onnx import encoder_checksums, encoder_dir_name, encoder_model_file, install_encoder
from ...errors import QAError, ShardError
from ...store import IndexStore, exclusive_lock
from ..batches import check_sources
from ..chunk_pool import available_cpus
from ..options import BuildOptions, BuildReport, BuildSettings, ProgressCallback, build_settings, no_progress
from .assemble import index_from_shards
from .format import (
    MODELS,
    SetEntry,
    Shard,
    ShardSettings,
    file_sha256,
    is_complete,
    leftovers,
    shard_name,
    write_set,
)
from .guard import Guard
from .worker import ShardJob, ShardResult, ShardWorker, WorkerSpec

RAY_EXTRA = "pip install 'pubmed-qa[ray]'"
TASK_RETRIES = 3  # a file whose worker dies is tried again this often (on a new worker)

Log = Callable[[str], None]


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide the Ray part runs."""

    address: str | None = None  # a running cluster ("auto", "ray://head:10001"); None starts a local Ray
    shards: str | Path | None = None  # where shards go (default: the index's shards/); shared storage on a cluster
    num_cpus: int | None = None  # a local Ray's CPUs (default: those this process may use)
    workers: int | None = None  # Ray workers, each with its own encoder (default: one per CPU, at most one per file)
    cpus_per_worker: int = 1  # CPUs each worker takes (and int8 encoder threads it runs)


def build_with_ray(
    sources: Iterable[str | Path],
    index: str | Path = "index",
    options: BuildOptions | None = None,
    ray_options: RayOptions | None = None,
    *,
    progress: ProgressCallback | None = None,
    log: Log | None = None,
) -> BuildReport:
    """Build (or update) ``index`` from ``sources`` with Ray workers embedding one file each.

    The index equals the one ``build_index(sources, index, options)`` makes. ``log`` gets a line per
    shard as it completes (or is found complete). The report's embed figures are the workers' own,
    summed over workers: passages per second per worker.
    """
    started = time.perf_counter()
    options = options or BuildOptions()
    ray_options = ray_options or RayOptions()
    say = log or (lambda line: None)
    ray = _import_ray()
    _check_reachable(ray_options.address)  # before anything is made: a bad address leaves nothing behind
    files = check_sources(sources, skip_bad=options.skip_bad)  # a wrong file fails now, not on a worker later
    store = IndexStore(index)
    settings = build_settings(index, options)
    directory = Path(ray_options.shards) if ray_options.shards is not None else store.layout.shards
    if directory.exists() and not directory.is_dir():
        raise ShardError(f"{directory} is a file, not a folder for shards; give --shards a folder")
    directory.mkdir(parents=True, exist_ok=True)
    lock = exclusive_lock(directory / ".lock", f"another build is writing shards in {directory}; wait for it to finish")
    try:
        _clean(directory)
        encoder_dir, shard_settings = _prepare_encoder(directory, store, settings, options.precision, progress)
        jobs, entries = _plan(files, directory, shard_settings, say)
        spec = WorkerSpec(shard_settings, str(encoder_dir.resolve()) if encoder_dir else None,
                          encoder_checksums(encoder_dir) if encoder_dir else {}, options.device,
                          options.batch_size, ray_options.cpus_per_worker, options.skip_bad)  # fmt: skip
        results, workers = _run(ray, jobs, spec, ray_options, say, progress or no_progress) if jobs else ([], 0)
        _clean(directory)  # what a killed try left behind
        write_set(directory, shard_settings, entries, encoder_dir)
        report = index_from_shards(directory, index, options, progress=progress)
    finally:
        lock.release()
    made = [r for r in results if r.made]
    report.shards_made, report.workers = len(made), workers
    report.chunks_embedded = sum(r.passages for r in made)
    report.sentences_embedded = sum(r.sentences for r in made)
    report.embed_seconds = sum(r.seconds.get("embed", 0.0) for r in made)
    report.sentence_seconds = sum(r.seconds.get("sentences", 0.0) for r in made)
    report.sources = [str(f) for f in files]
    report.seconds = time.perf_counter() - started
    return report


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise QAError(f"--engine ray needs the ray extra: {RAY_EXTRA} (or -e '.[ray]')") from None
    return ray


def _clean(directory: Path) -> None:
    for leftover in leftovers(directory):
        shutil.rmtree(leftover, ignore_errors=True)


def _prepare_encoder(
    directory: Path,
    store: IndexStore,
    settings: BuildSettings,
    precision: str | None,
    progress: ProgressCallback | None,
) -> tuple[Path | None, ShardSettings]:
    """The exported encoder every worker loads, in ``models/`` beside the shards: the index's own if it has one
    (so the new vectors match it), else exported once here, not once per worker."""
    chunking = settings.chunking
    model = canonical_model_name(settings.model)
    if not is_exported(settings.backend):
        return None, ShardSettings(
            model, settings.backend, chunking.chunk_tokens, chunking.overlap_sentences, precision=precision
        )
    target = directory / MODELS / encoder_dir_name(model)
    if not encoder_model_file(target).is_file():
        existing = store.layout.encoder_dir_for(model)
        if encoder_model_file(existing).is_file():
            install_encoder(existing, target)  # a fresh copy: the same as the index's by construction
        else:
            if progress is not None:
                progress("prepare", 0, None)
            _ = Embedder(model, backend=settings.backend, encoder_dir=target).dimension  # exports it
    digest = encoder_checksums(target)[encoder_model_file(target).name]  # part of every shard's name
    settings_out = ShardSettings(model, settings.backend, chunking.chunk_tokens, chunking.overlap_sentences,
                                 encoder_sha256=digest)  # fmt: skip
    return target, settings_out


def _plan(
    files: Sequence[Path], directory: Path, settings: ShardSettings, say: Log
) -> tuple[list[ShardJob], list[SetEntry]]:
    """A job for each file without a complete shard; complete ones are checked and kept."""
    jobs: list[ShardJob] = []
    entries: list[SetEntry] = []
    seen: set[str] = set()
    for path in files:
        digest = file_sha256(path)
        name = shard_name(path, digest, settings)
        entries.append(SetEntry(name, path.name))
        if name in seen:
            continue
        seen.add(name)
        folder = directory / name
        if is_complete(folder):
            shard = Shard(folder)
            shard.verify()
            say(f"shard {name}: complete from an earlier run, kept ({shard.manifest.passages:,} passages)")
        else:
            jobs.append(ShardJob(str(path.resolve()), name, str(directory.resolve()), digest))
    return jobs, entries


def _run(
    ray: Any, jobs: list[ShardJob], spec: WorkerSpec, ray_options: RayOptions, say: Log, progress: ProgressCallback
) -> tuple[list[ShardResult], int]:
    """Make the shards of ``jobs`` on Ray workers; returns their results and how many workers ran."""
    started_here = not ray.is_initialized()
    guard = _start_guarded(ray, ray_options) if started_here else None
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        workers = min(len(jobs), ray_options.workers or max(1, cpus // ray_options.cpus_per_worker))
        env = {k: v for k, v in os.environ.items() if k.startswith("QA_TEST_")}  # crash tests reach the workers
        gpus = 1 if (spec.device or "").startswith("cuda") else 0
        worker_class = ray.remote(ShardWorker).options(
            num_cpus=ray_options.cpus_per_worker, num_gpus=gpus, max_restarts=0, max_task_retries=0,
            **({"runtime_env": {"env_vars": env}} if env else {}),
        )  # fmt: skip
        say(f"making {len(jobs)} shard(s) with {workers} Ray worker(s)")
        with _Workers(ray, lambda: worker_class.remote(spec), workers) as pool:
            return pool.make(jobs, say, progress), workers
    except ray.exceptions.RayError as exc:
        raise QAError(f"a Ray worker failed: {_cause_line(exc)}") from None
    finally:
        try:
            if started_here:
                ray.shutdown()
        finally:
            if guard is not None:
                guard.close()


STALL_SECONDS = 300.0  # with jobs left and no worker alive, how long a replacement may take to be placed


class _Workers:
    """Ray workers handing out one source file at a time, each only once it is placed and ready.

    Ray's own restarts would put a dead worker's file back on that worker, which waits for a CPU: when a
    node is lost, the survivors hold theirs, so the build would hang. Here a dead worker (its process
    killed, or its node gone) is replaced, its file goes back in the queue for whichever worker is free
    first, and a replacement that cannot be placed is never waited on while others work.
    """

    def __init__(self, ray: Any, new_worker: Callable[[], Any], size: int) -> None:
        self.ray, self.new_worker = ray, new_worker
        self.starting: dict[Any, Any] = {}  # readiness future -> worker
        self.busy: dict[Any, tuple[Any, ShardJob]] = {}  # result future -> (worker, job)
        self.idle: list[Any] = []
        self.failures: dict[str, int] = {}  # a file's workers that died making it
        self.failed_starts = 0
        for _ in range(size):
            self._add()

    def _add(self) -> None:
        worker = self.new_worker()
        self.starting[worker.__ray_ready__.remote()] = worker

    def make(self, jobs: Sequence[ShardJob], say: Log, progress: ProgressCallback) -> list[ShardResult]:
        queue, results = list(jobs), []
        progress("make", 0, len(jobs))
        while queue or self.busy:
            while queue and self.idle:
                worker, job = self.idle.pop(), queue.pop(0)
                self.busy[worker.make.remote(job)] = (worker, job)
            ready, _ = self.ray.wait([*self.busy, *self.starting], num_returns=1, timeout=STALL_SECONDS)
            if not ready:
                if not self.busy:
                    raise QAError(f"no Ray worker could be placed for {STALL_SECONDS:.0f} s, with {len(queue)} "
                                  "shard(s) to make (was a node lost?); the shards made are kept: rerun to make "
                                  "the rest")  # fmt: skip
                continue
            future = ready[0]
            if future in self.starting:
                worker = self.starting.pop(future)
                if self._placed(future):
                    self.idle.append(worker)
                else:
                    self._add()
                continue
            worker, job = self.busy.pop(future)
            result = self._result(future, job)
            if result is None:  # the worker died: its file goes back in the queue, to a worker that lives
                say(f"a Ray worker died making {Path(job.source).name} (its process or node is gone); "
                    "the file goes to another worker")  # fmt: skip
                queue.insert(0, job)
                self._add()
                continue
            if result.error:
                raise QAError(result.error)
            self.idle.append(worker)
            results.append(result)
            progress("make", len(results), len(jobs))
            rate = result.passages / result.seconds["total"] if result.seconds.get("total") else 0.0
            say(f"shard {len(results)}/{len(jobs)} made: {result.name} "
                f"({result.passages:,} passages, {result.seconds.get('total', 0):.1f} s, {rate:.0f}/s)")  # fmt: skip
        return results

    def _placed(self, future: Any) -> bool:
        """Whether a new worker came up (its readiness ``future`` resolved without its death); workers that
        die starting more than ``TASK_RETRIES`` times (a node without the package, say) stop the build."""
        try:
            self.ray.get(future)
            return True
        except self.ray.exceptions.RayActorError as exc:
            self.failed_starts += 1
            if self.failed_starts > TASK_RETRIES:
                raise QAError(f"Ray workers could not start ({_cause_line(exc)})") from None
            return False

    def _result(self, future: Any, job: ShardJob) -> ShardResult | None:
        """The shard a worker made, or None when the worker died first; a file whose workers died more than
        ``TASK_RETRIES`` times stops the build in one line."""
        try:
            return self.ray.get(future)
        except (self.ray.exceptions.RayActorError, self.ray.exceptions.ObjectLostError) as exc:
            self.failures[job.name] = self.failures.get(job.name, 0) + 1
            if self.failures[job.name] > TASK_RETRIES:
                raise QAError(f"the Ray worker making {Path(job.source).name} died {self.failures[job.name]} "
                              f"times ({_cause_line(exc)}); the shards made are kept: rerun to make the "
                              "rest") from None  # fmt: skip
            return None

    def __enter__(self) -> _Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        for worker in [*self.idle, *self.starting.values(), *(w for w, _ in self.busy.values())]:
            with contextlib.suppress(Exception):  # a worker on a lost node cannot be killed, and need not be
                self.ray.kill(worker)


REACH_SECONDS = 10.0  # to open a TCP connection to a cluster's address


def _check_reachable(address: str | None) -> None:
    """A cluster address ("host:port", "ray://host:port") must accept a connection within ``REACH_SECONDS``:
    ``ray.init`` on a closed port retries for minutes and prints a page of warnings (measured: 200 s)."""
    import socket

    if address is None or address == "auto":
        return
    where = address.removeprefix("ray://")
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise QAError(f"--address {address!r}: expected HOST:PORT (the head's GCS port, 6379 by default), "
                      "ray://HOST:PORT or auto")  # fmt: skip
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=REACH_SECONDS):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise QAError(f"cannot reach the Ray cluster at {address} ({reason}); is `ray start --head` running "
                      "there?") from None  # fmt: skip


def _start_guarded(ray: Any, ray_options: RayOptions) -> Guard | None:
    """Start or reach Ray; a local one gets a ``Guard``, so that its processes go with a killed build."""
    guard = Guard() if ray_options.address is None else None
    try:
        _start(ray, ray_options)
    except BaseException:
        if guard is not None:
            guard.close()
        raise
    return guard


def _start(ray: Any, ray_options: RayOptions) -> None:
    """Connect to the cluster at ``address``, or start a local Ray with ``num_cpus`` CPUs."""
    local = ray_options.address is None
    try:
        ray.init(
            address=ray_options.address,
            num_cpus=(ray_options.num_cpus or available_cpus()) if local else None,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,  # not Ray's notices about its own setup, on every run
        )
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError... the user needs one line
        where = f"the Ray cluster at {ray_options.address}" if not local else "a local Ray instance"
        raise QAError(f"cannot start or reach {where} ({_cause_line(exc)})") from None


def _cause_line(exc: BaseException) -> str:
    """The line of a Ray error that says what went wrong (its cause's last unindented line)."""
    cause = getattr(exc, "cause", None)
    text = str(cause if isinstance(cause, BaseException) else exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith(" ")]
    return (lines[-1] if lines else type(exc).__name__)[:200]


__all__ = ["RayOptions", "build_with_ray", "RAY_EXTRA"]
