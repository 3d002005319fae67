"""Run a child process and measure it: wall seconds, CPU seconds (user+sys of the child and
the descendants it waited for) and peak RSS, from ``os.wait4``."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass

from benchmarks.errors import BudgetExceeded


@dataclass(frozen=True)
class Finished:
    cmd: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    cpu_s: float
    maxrss_kib: int


def run(cmd: list[str], env: dict | None = None, cwd: str | None = None,
        stream_stderr: bool = False, timeout_s: float | None = None,
        stderr_path: str | None = None) -> Finished:
    """Run ``cmd`` to completion; output goes through temporary files (no pipe dead-locks;
    stderr into ``stderr_path`` when given, which stays readable after a timeout).
    With ``timeout_s``, the child is killed when the time is up and ``BudgetExceeded`` raised."""
    with tempfile.TemporaryFile("w+") as out, \
            (open(stderr_path, "w+") if stderr_path else tempfile.TemporaryFile("w+")) as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=None if stream_stderr else err,
                                env=env, cwd=cwd, stdin=subprocess.DEVNULL)
        if timeout_s is None:
            _, status, usage = os.wait4(proc.pid, 0)
        else:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() - t0 > timeout_s:
                    proc.kill()
                    os.wait4(proc.pid, 0)
                    proc.returncode = -9
                    raise BudgetExceeded(f"{cmd[0]} {' '.join(cmd[1:3])}: stopped after "
                                         f"{timeout_s:.0f} s, the time left in the budget")
                time.sleep(0.25)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Finished(tuple(cmd), proc.returncode, out.read(), err.read(), wall,
                        usage.ru_utime + usage.ru_stime, int(usage.ru_maxrss))


def one_thread_env(base: dict | None = None) -> dict:
    """The environment with every math library limited to one thread."""
    env = dict(os.environ if base is None else base)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "ORT_NUM_THREADS"):
        env[var] = "1"
    return env
