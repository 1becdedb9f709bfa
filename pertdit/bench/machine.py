"""What a benchmark ran on: CPU model and cores, memory, torch version, GPU, load, date and command."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import torch


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def load_average() -> str:
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover
        return "n/a"


@dataclass
class MachineInfo:
    """A description of the machine; `describe(device)` is the one line each figure carries."""

    cpu: str = field(default_factory=_cpu_model)
    cores: int = field(default_factory=_usable_cores)
    logical_cpus: int = field(default_factory=lambda: os.cpu_count() or 1)
    torch_threads: int = field(default_factory=torch.get_num_threads)
    memory_gib: float | None = field(default_factory=_memory_gib)
    os: str = field(default_factory=platform.platform)
    python: str = field(default_factory=platform.python_version)
    torch: str = torch.__version__
    gpu: str | None = None
    cuda: str | None = None
    date: str = field(default_factory=lambda: datetime.now().astimezone().isoformat(timespec="seconds"))
    command: str = "python -m pertdit.bench"
    load_start: str = field(default_factory=load_average)

    def __post_init__(self) -> None:
        self.torch = torch.__version__
        if torch.cuda.is_available():
            self.gpu = torch.cuda.get_device_name(0)
            self.cuda = torch.version.cuda

    def describe(self, device: str) -> str:
        """One line naming the hardware of `device`."""
        cpu = f"{self.cpu}, {self.cores} usable core(s) ({self.torch_threads} torch thread(s))"
        if device == "cuda" and self.gpu:
            return f"GPU {self.gpu} (CUDA {self.cuda}); host {cpu}; torch {self.torch}"
        return f"CPU {cpu}; torch {self.torch}"

    def table(self) -> list[tuple[str, str]]:
        mem = f"{self.memory_gib:.1f} GiB" if self.memory_gib else "n/a"
        return [("CPU", f"{self.cpu} ({self.cores} usable of {self.logical_cpus} logical CPUs)"),
                ("torch threads", str(self.torch_threads)), ("memory", mem), ("OS", self.os),
                ("Python", self.python), ("torch", self.torch),
                ("GPU", f"{self.gpu} (CUDA {self.cuda})" if self.gpu else "none available"),
                ("date", self.date), ("command", f"`{self.command}`"),
                ("load average (1/5/15 min) at start", self.load_start),
                ("load average at end", load_average())]
