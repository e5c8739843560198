"""A watchdog for the local Ray a build starts: when the build dies, so does everything it started.

``ray.init()`` without an address starts a GCS server and a raylet as children of the build, and they
share its fate. Their dashboard and runtime-env agents and idle workers do not: after a SIGKILLed build
they poll for the raylet and linger (measured here: about 60 s, then ``<defunct>`` where PID 1 does not
reap orphans, as in a container started without ``--init``). ``Guard`` starts a small process in a
session of its own that notes the build's descendants twice a second and, once the build is gone, kills
those still running. A build that ends normally stops its Ray itself and then the guard.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

POLL_SECONDS = 0.5


class Guard:
    """The watchdog process for this build (see the module docstring)."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "qa.build.shards.guard", str(os.getpid())],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C or a kill of the build's process group does not reach it
        )  # fmt: skip

    def close(self) -> None:
        """The build stopped its Ray itself: the guard has nothing left to do."""
        self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)


def watch(build_pid: int) -> None:
    """Note ``build_pid``'s descendants until it is gone, then kill the ones still running (the same
    process: a PID and its start time, so that a recycled PID is never hit)."""
    import psutil

    try:
        build = psutil.Process(build_pid)
    except psutil.Error:
        return
    started: dict[int, float] = {}
    while True:
        try:
            if not build.is_running() or build.status() == psutil.STATUS_ZOMBIE:
                break
            for child in build.children(recursive=True):
                if child.pid != os.getpid():
                    with contextlib.suppress(psutil.Error):
                        started[child.pid] = child.create_time()
        except psutil.Error:
            break
        time.sleep(POLL_SECONDS)
    for pid, created in started.items():
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            if process.create_time() == created:
                process.kill()


if __name__ == "__main__":
    watch(int(sys.argv[1]))
