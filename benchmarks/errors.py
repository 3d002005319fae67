"""Benchmark errors: subclasses of the one hierarchy in ``tracec_runtime.errors``."""

from __future__ import annotations

from tracec_runtime.errors import TracecError


class BenchmarkError(TracecError):
    """The benchmark harness could not run a step."""

    exit_code = 4


class BenchDataError(BenchmarkError):
    """A benchmark data file is missing or malformed (names the file and line)."""

    exit_code = 3

    def __init__(self, path: str, message: str, line: int | None = None):
        self.path, self.line, self.message = str(path), line, message
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {message}")


class SubprocessFailed(BenchmarkError):
    """A child process (the TRACER driver, the tracec CLI) failed unexpectedly."""

    def __init__(self, what: str, returncode: int, stderr: str):
        self.what, self.returncode, self.stderr = what, returncode, stderr
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        super().__init__(f"{what} exited with code {returncode} (expected 0).\n{tail}")


class BudgetExceeded(BenchmarkError):
    """An optional job was stopped because the run's time budget ran out."""
