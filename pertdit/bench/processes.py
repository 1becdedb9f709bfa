"""Run a command as a child process and measure it: wall time, CPU time and peak resident memory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pertdit.errors import PertDiTError


@dataclass(frozen=True)
class Measured:
    """What one command cost: `seconds` wall, `cpu_seconds` (user + system), `peak_rss` bytes (the child's
    maximum resident set, from `wait4`), its output."""

    seconds: float
    cpu_seconds: float
    peak_rss: int
    stdout: str
    stderr: str


def measured_run(command: list[str], env: dict[str, str] | None = None, cwd: str | Path | None = None,
                 timeout: float | None = None) -> Measured:
    """Run `command`; a non-zero exit raises PertDiTError with the end of its output."""
    out_path = Path(cwd or ".") / f".bench-{os.getpid()}-{time.time_ns()}"
    start = time.perf_counter()
    with open(f"{out_path}.out", "w+") as out, open(f"{out_path}.err", "w+") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=cwd, text=True)
        deadline = None if timeout is None else start + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.perf_counter() > deadline:
                process.kill()
                os.wait4(process.pid, 0)
                raise PertDiTError(f"{' '.join(command[:6])} ... ran past {timeout:.0f} s")
            time.sleep(0.05)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    for suffix in (".out", ".err"):
        Path(f"{out_path}{suffix}").unlink(missing_ok=True)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise PertDiTError(f"{' '.join(command[:6])} ... exited with {code}:\n{stderr[-2000:]}")
    return Measured(seconds=seconds, cpu_seconds=usage.ru_utime + usage.ru_stime, peak_rss=usage.ru_maxrss * 1024,
                    stdout=stdout, stderr=stderr)


def pertdit_command(*args: str) -> list[str]:
    """`pertdit <args>` run by this Python (the installed console script is not needed)."""
    return [sys.executable, "-m", "pertdit.cli", *args]


def evict_from_page_cache(*paths: str | Path) -> None:
    """Ask the kernel to drop these files' cached pages (`posix_fadvise(DONTNEED)`; only these files, no
    privileges needed), so the next read comes from disk, as in a first run on a fresh machine."""
    for path in paths:
        for file in ([Path(path)] if Path(path).is_file() else sorted(Path(path).rglob("*"))):
            if file.is_file():
                with open(file, "rb") as handle:
                    os.fsync(handle.fileno())  # written pages must reach the disk before they can be dropped
                    os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def free_bytes(path: str | Path) -> int:
    """Free space of the file system holding `path` (created if missing)."""
    Path(path).mkdir(parents=True, exist_ok=True)
    return shutil.disk_usage(path).free
