"""Peak memory of a timed step: CUDA allocator peak, or the process's resident-set peak on
the CPU (see the package docstring for what each figure means)."""

from __future__ import annotations

import resource
from pathlib import Path

import torch

MiB = 1024 * 1024


class PeakMemory:
    """Peak memory of the code between `start()` and `stop()` (see module docstring).

    `stop()` returns (peak MiB, MiB above the level at `start()`: what the step itself
    needed); the second is None for `process_max_rss`, which cannot be reset.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.baseline = 0.0
        if device.type == "cuda":
            self.kind = "cuda_max_allocated"
        elif _can_reset_rss_peak():
            self.kind = "rss_peak"
        else:
            self.kind = "process_max_rss"

    def start(self) -> None:
        if self.kind == "cuda_max_allocated":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline = torch.cuda.memory_allocated(self.device) / MiB
        elif self.kind == "rss_peak":
            _reset_rss_peak()
            self.baseline = _proc_status_kib("VmRSS") / 1024

    def stop(self) -> tuple[float, float | None]:
        if self.kind == "cuda_max_allocated":
            peak = torch.cuda.max_memory_allocated(self.device) / MiB
        elif self.kind == "rss_peak":
            peak = _proc_status_kib("VmHWM") / 1024
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
            return peak, None
        return peak, peak - self.baseline


_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def _reset_rss_peak() -> None:
    _CLEAR_REFS.write_text("5")  # "5": reset the peak RSS to the current RSS (Linux >= 4.0)


def _proc_status_kib(key: str) -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise OSError(f"{key} missing from /proc/self/status")


def _can_reset_rss_peak() -> bool:
    try:
        _reset_rss_peak()
        _proc_status_kib("VmHWM")
        _proc_status_kib("VmRSS")
    except (OSError, ValueError):
        return False
    return True
