"""Chunk pool: chunk the next batches of records in worker processes while the build's own process encodes.

Sentence splitting (pysbd) is pure Python and holds the GIL, so chunking in a thread beside the encoder
slows the encoder's own Python down; worker processes share no GIL, and with more cores they chunk side
by side. Workers are started with "spawn" (never fork: the build's process may already run onnxruntime or
torch threads), import only ``qa.chunk``, pysbd and ``tokenizers`` (never torch or the model), and build
their ``Chunker`` once from a ``ChunkerSpec``. Results come back in the order they were asked for, so a
parallel build writes exactly the passages, ids and vectors of a serial one.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Protocol

from ..embed.chunk import Chunk, Chunker, ChunkerSpec
from ..errors import QAError
from ..records import Record

TASK_RECORDS = 32  # records per worker task: the first batch is ready soon, and pickling stays a small share
MIN_PARALLEL_RECORDS = 500  # below this a build takes seconds; starting 2 workers took ~0.5 s here
MAX_AUTO_WORKERS = 4  # CPU encoder: it needs the other cores (not measured above 2 CPUs)
MAX_AUTO_WORKERS_GPU = 8  # GPU encoder: ~600 passages/s per chunking core against thousands/s encoded (not measured)


def available_cpus() -> int:
    """CPUs this process may run on (the affinity mask, where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def auto_workers(records: int, cpus: int | None = None, *, gpu: bool = False) -> int:
    """Chunking processes for ``records`` records to embed; 1 means the serial path (chunking in a thread
    of the build's own process).

    One core is left to the build's own process, but never fewer than 2 workers on 2 CPUs: there, 2
    processes built the 1,001 shared records 1.17x as fast as the thread (bench/speed.py --only parallel,
    one noisy run), most likely because the thread's pure-Python chunking holds the GIL that the encoder's
    Python loop needs. With the encoder on a GPU the CPUs have nothing else to do and chunking is the
    bottleneck, so more of them chunk.
    """
    cpus = available_cpus() if cpus is None else cpus
    if records < MIN_PARALLEL_RECORDS or cpus < 2:
        return 1
    return min(max(cpus - 1, 2), MAX_AUTO_WORKERS_GPU if gpu else MAX_AUTO_WORKERS)


class Pending(Protocol):
    """Chunks on their way: ``result()`` waits for them."""

    def result(self) -> list[Chunk]: ...


Submit = Callable[[Sequence[Record]], Pending]


@contextlib.contextmanager
def chunking(chunker: Chunker, workers: int) -> Iterator[tuple[Submit, int]]:
    """``(submit, ahead)``: a function that starts chunking a batch of records, and how many batches to
    keep in flight. ``workers=1`` is the serial path: one thread, one batch ahead."""
    if workers <= 1:
        with ThreadPoolExecutor(max_workers=1) as threads:

            def submit(records: Sequence[Record]) -> Future[list[Chunk]]:
                return threads.submit(_chunk_all, chunker, records)

            yield submit, 1
    else:
        with ChunkPool(chunker.spec(), workers) as pool:
            yield pool.submit, 2  # two batches ahead: the workers never wait for the encoder to ask


def _chunk_all(chunker: Chunker, records: Sequence[Record]) -> list[Chunk]:
    return [c for r in records for c in chunker.chunk(r)]


@dataclass
class PendingChunks:
    """The tasks of one batch; ``result()`` joins their chunks in order."""

    futures: list[Future[list[Chunk]]]

    def result(self) -> list[Chunk]:
        chunks: list[Chunk] = []
        try:
            for future in self.futures:
                chunks.extend(future.result())
        except BrokenProcessPool as exc:
            why = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else "no reason given"
            raise QAError(
                f"a chunking worker process stopped unexpectedly ({why}); the index is unchanged. Run the build "
                'again or with --workers 1 (a script that builds needs `if __name__ == "__main__":`)'
            ) from None
        return chunks


class ChunkPool:
    """``workers`` processes that chunk records; ``submit`` splits a batch into tasks of ``task_records``."""

    def __init__(self, spec: ChunkerSpec, workers: int, *, task_records: int | None = None) -> None:
        self.task_records = task_records or TASK_RECORDS
        if workers < 1 or self.task_records < 1:
            raise ValueError("workers and task_records must be at least 1")
        self._executor = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker, initargs=(spec,)
        )

    def submit(self, records: Sequence[Record]) -> PendingChunks:
        n = self.task_records
        tasks = [list(records[i : i + n]) for i in range(0, len(records), n)]
        try:
            futures = [self._executor.submit(_chunk_in_worker, task) for task in tasks]
        except BrokenProcessPool as exc:  # a worker died before this batch was handed over
            return PendingChunks([_failed(exc)])
        return PendingChunks(futures)

    def close(self) -> None:
        """Stop the workers: queued tasks are dropped, running ones (a fraction of a second) finish."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ChunkPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _failed(exc: BaseException) -> Future[list[Chunk]]:
    future: Future[list[Chunk]] = Future()
    future.set_exception(exc)
    return future


@dataclass
class _WorkerState:
    """What a worker process keeps between tasks. The pool's initializer fills it once per worker; the
    build's own process never touches it."""

    chunker: Chunker | None = None


_WORKER = _WorkerState()


def _start_worker(spec: ChunkerSpec) -> None:
    # Ctrl-C goes to the whole process group: the build's process handles it and stops the pool, so the
    # workers ignore it rather than each printing a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A worker holds its own end of the task queue, so it would wait for tasks forever if the build's process
    # were killed (SIGKILL, out of memory): a watcher thread ends it when its parent is gone.
    threading.Thread(target=_exit_with_parent, name="qa-parent-watch", daemon=True).start()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one thread per worker: the workers are the parallelism
    _WORKER.chunker = spec.build()


def _exit_with_parent() -> None:
    parent = multiprocessing.parent_process()
    if parent is not None:
        parent.join()  # returns when the parent process has exited
        os._exit(1)


def _chunk_in_worker(records: list[Record]) -> list[Chunk]:
    if _WORKER.chunker is None:  # pragma: no cover - the initializer always runs first
        raise RuntimeError("chunk worker used before it was started")
    return _chunk_all(_WORKER.chunker, records)


__all__ = ["ChunkPool", "PendingChunks", "Pending", "Submit", "chunking", "auto_workers", "available_cpus"]
