"""A real two-node Ray cluster on this machine: `ray start --head`, then `ray start --address` for a second
node with its own temp folder, as separate processes; `qa build --engine ray --address` against it, with the
second node killed while it makes a shard. The index must equal the local build and nothing may be left
running. Skipped, loudly, only where Ray is not installed or its head cannot start here."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import same_index

START_SECONDS = 90  # for a node to come up on 2 busy cores


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _until(condition, seconds: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"not within {seconds:.0f} s: {what}")


def _session(leader: int) -> list:  # type: ignore[type-arg]
    """The processes still in the session that ``leader`` opened (``start_new_session``), leader included."""
    import psutil

    out = []
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) == leader and process.status() != psutil.STATUS_ZOMBIE:
                out.append(process)
        except (OSError, psutil.Error):
            continue
    return out


def _titles(processes: list) -> list[str]:  # type: ignore[type-arg]
    import psutil

    out = []
    for p in processes:
        try:
            out.append(" ".join(p.cmdline())[:80])
        except psutil.Error:
            continue
    return out


class Cluster:
    """A head and a second node, each a blocking `ray start` in a session of its own."""

    def __init__(self, folder: Path) -> None:
        self.ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
        if self.ray is None:
            pytest.skip("RAY IS NOT INSTALLED: the two-node cluster test did not run (pip install -e '.[ray]')")
        self.folder, self.port = folder, _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
                    "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1",
                    # a lost node is declared dead after 3 missed 1 s health checks, not Ray's 5 x 3 s
                    "RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "3"}  # fmt: skip
        self.started: list[subprocess.Popen] = []  # type: ignore[type-arg]
        self.seen: dict[tuple[int, float], str] = {}  # every process of theirs, by PID and start time

    def start(self, *args: str, log: str) -> subprocess.Popen:  # type: ignore[type-arg]
        out = open(self.folder / log, "w")  # noqa: SIM115 -- the node's log, kept for the failure message
        command = [self.ray, "start", "--block", "--num-cpus=1", "--disable-usage-stats", *args]
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        self.started.append(process)
        return process

    def up(self) -> tuple[subprocess.Popen, subprocess.Popen]:  # type: ignore[type-arg]
        head = self.start("--head", f"--port={self.port}", "--include-dashboard=false",
                          f"--temp-dir={self.folder / 'h'}", log="head.log")  # fmt: skip
        try:
            _until(lambda: self._reachable() or head.poll() is not None, START_SECONDS, "the head's GCS port")
        except AssertionError:
            pytest.skip(f"RAY'S HEAD DID NOT START HERE: {(self.folder / 'head.log').read_text()[-300:]}")
        if head.poll() is not None:
            pytest.skip(f"RAY'S HEAD DID NOT START HERE: {(self.folder / 'head.log').read_text()[-300:]}")
        node = self.start(f"--address={self.address}", f"--temp-dir={self.folder / 'n'}", log="node.log")
        _until(lambda: self.nodes() == 2, START_SECONDS, "two live nodes in `ray status`")
        return head, node

    def _reachable(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def nodes(self) -> int:
        status = subprocess.run([self.ray, "status", f"--address={self.address}"], capture_output=True, text=True,
                                env=self.env, timeout=60).stdout  # fmt: skip
        active = status.split("Active:", 1)[-1].split("Pending:", 1)[0] if "Active:" in status else ""
        return sum(line.strip().startswith("1 node_") for line in active.splitlines())

    def note(self, *leaders: int) -> None:
        """Remember every process now in these sessions, to check later that none outlives the test."""
        for p in (p for leader in leaders for p in _session(leader)):
            try:
                self.seen[(p.pid, p.create_time())] = " ".join(p.cmdline())[:80]
            except Exception:  # noqa: BLE001 -- gone meanwhile
                continue

    def alive(self) -> list[str]:
        import psutil

        out = []
        for (pid, created), title in self.seen.items():
            try:
                p = psutil.Process(pid)
                if p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE:
                    out.append(f"{pid} {title}")
            except psutil.Error:
                continue
        return out

    def close(self) -> None:
        for process in self.started:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for process in self.started:
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    pytest.importorskip("psutil", reason="PSUTIL IS NOT INSTALLED: the two-node cluster test did not run")
    folder = Path(tempfile.mkdtemp(prefix="qa-ray-", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    made = Cluster(folder)
    try:
        yield made
    finally:
        made.close()
        leftover = made.alive()
        for line in leftover:  # never leave them to the next test, whatever this one found
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line.split()[0]), signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)


def test_a_two_node_build_survives_a_lost_node_and_equals_the_local_build(
    cluster: Cluster, ray_sources: list[Path], ray_local_index: Path, tmp_path: Path
) -> None:
    head, node = cluster.up()
    index, shards = tmp_path / "index", tmp_path / "shards"
    shutil.copytree(ray_local_index / "models", index / "models")  # no encoder export: workers start at once
    command = [sys.executable, "-m", "qa.cli", "build", *map(str, ray_sources), "--engine", "ray",
               "--address", cluster.address, "--shards", str(shards), "--index", str(index)]  # fmt: skip
    log = open(tmp_path / "build.log", "w")  # noqa: SIM115
    build = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=cluster.env, start_new_session=True)
    try:
        def making_on_the_second_node() -> bool:
            cluster.note(head.pid, node.pid, build.pid)
            return any(t.startswith("ray::ShardWorker.make") for t in _titles(_session(node.pid)))

        _until(making_on_the_second_node, 180, "the second node making a shard")
        os.killpg(node.pid, signal.SIGKILL)  # the node and everything in it, mid-shard
        while build.poll() is None:
            cluster.note(head.pid, build.pid)
            time.sleep(1)
        output = (tmp_path / "build.log").read_text()
        assert build.wait(300) == 0, output[-2000:]
    finally:
        if build.poll() is None:
            os.killpg(build.pid, signal.SIGKILL)
        log.close()
    assert "a Ray worker died making" in output and "the file goes to another worker" in output, output[-2000:]
    assert "Traceback" not in output
    same_index(index, ray_local_index, sentence_cosine=0.90)
    _until(lambda: not any("ShardWorker" in t for t in _titles(_session(head.pid))), 30,
           "the build's workers gone from the head once it ended")  # fmt: skip
    cluster.close()
    _until(lambda: not cluster.alive(), 30, f"every process of the cluster and the build gone: {cluster.alive()}")
