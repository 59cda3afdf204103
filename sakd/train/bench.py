"""Benchmark of the distillation step: seconds per iteration and peak memory per strategy.

Method (why the numbers can be trusted on a shared machine):
- every strategy gets its own freshly built models (same seed, so the same weights) and the
  same input batch, drawn from the in-memory on-device loader the training stages use;
- a few warm-up steps per strategy are not timed (allocator, oneDNN primitive caches,
  torch.compile's first compilations);
- timed steps are interleaved: each round runs one step of every strategy, in an order rotated
  every round, so a burst of load from other processes slows all strategies alike; the median
  over rounds then ignores the bursts;
- the device is synchronised around each timed step (a no-op on the CPU);
- one epoch per strategy is also timed, including the data path (on-device crop, flip,
  normalisation) and the once-per-epoch reduction of the step statistics, its batches
  interleaved across strategies the same way.

Peak memory: on CUDA, `torch.cuda.max_memory_allocated` over each strategy's steps (tensors
only, reset before each step). On the CPU, the process's peak resident set (RSS) while the
strategy's steps ran: Linux lets a process reset its high-water mark (/proc/self/clear_refs)
and read it back (VmHWM); without that, `resource.getrusage` gives the process's lifetime peak,
and `peak_mem_kind` says which one a figure is. CPU figures include the interpreter, torch's
libraries and every strategy's models, so they compare strategies, not absolute footprints.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from sakd.build import build_distill_step
from sakd.config import DistillConfig
from sakd.data.device_loader import DeviceLoader
from sakd.data.info import AugmentSpec
from sakd.distillers import create_distiller, distiller_options
from sakd.models import create_model
from sakd.spots import list_strategies
from sakd.train.distill_step import DistillStep
from sakd.train.runtime import autocast_enabled, place_model

DEFAULT_STRATEGIES = ("never", "always", "adaptive")
CIFAR_TRAIN_IMAGES = 50_000
CIFAR_MEAN = (0.5071, 0.4867, 0.4408)  # any fixed statistics do: the images are random
CIFAR_STD = (0.2675, 0.2565, 0.2761)
MiB = 1024 * 1024


@dataclass(frozen=True)
class BenchConfig:
    """What to time. `epoch_images`: None = 50,000 on CUDA (a CIFAR-100 epoch), else 10
    batches; 0 skips the epoch measurement."""

    teacher: str = "resnet56"
    student: str = "resnet20"
    distiller: str = "at"
    batch_size: int = 64
    input_size: int = 32
    num_classes: int = 100
    steps: int = 20
    warmup: int = 3
    device: str = "auto"  # auto = CUDA when present
    threads: int = 0  # torch CPU threads; 0 = leave torch's setting
    channels_last: bool = True  # faster on CPU and GPU (docs/bench.md)
    autocast: bool = True  # bf16, CUDA only
    compile: bool = False
    fold_batchnorm: bool = True  # eval-mode passes on BN-folded views (DistillStep)
    epoch_images: int | None = None
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    seed: int = 0

    def __post_init__(self) -> None:
        for key, low in (("batch_size", 2), ("input_size", 4), ("num_classes", 2),
                         ("steps", 1), ("warmup", 0), ("threads", 0), ("seed", 0)):
            if getattr(self, key) < low:
                raise ValueError(f"bench {key} must be >= {low}, got {getattr(self, key)}")
        if self.epoch_images is not None and self.epoch_images < 0:
            raise ValueError(f"bench epoch_images must be >= 0, got {self.epoch_images}")
        if not self.strategies:
            raise ValueError("bench needs at least one strategy")
        unknown = [s for s in self.strategies if s not in list_strategies()]
        if unknown:
            raise ValueError(f"unknown strategy {unknown[0]!r}; valid: "
                             f"{', '.join(list_strategies())}")
        if len(set(self.strategies)) != len(self.strategies):
            raise ValueError(f"bench strategies repeat a name: {list(self.strategies)}")

    def images_per_epoch(self, device: torch.device) -> int:
        if self.epoch_images is not None:
            return self.epoch_images
        return CIFAR_TRAIN_IMAGES if device.type == "cuda" else 10 * self.batch_size


@dataclass
class StrategyResult:
    """One strategy's figures (JSON keys)."""

    median_step_s: float
    images_per_s: float
    peak_mem_mb: float  # peak of the process (CPU) or of allocated tensors (CUDA)
    step_mem_mb: float | None  # of which the step itself added (see PeakMemory)
    min_step_s: float
    p90_step_s: float
    steps: int
    epoch_s: float | None = None  # wall time of the whole epoch
    epoch_images_per_s: float | None = None
    epoch_median_s: float | None = None  # batches x median batch time: robust to load bursts


@dataclass
class BenchResult:
    config: BenchConfig
    strategies: dict[str, StrategyResult]
    machine: dict[str, Any]
    peak_mem_kind: str
    epoch_images: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio_adaptive_always(self) -> float | None:
        s = self.strategies
        if "adaptive" in s and "always" in s:
            return s["adaptive"].median_step_s / s["always"].median_step_s
        return None

    def to_dict(self) -> dict[str, Any]:
        """The JSON document: one object per strategy, the ratio, config and machine."""
        out: dict[str, Any] = {name: asdict(r) for name, r in self.strategies.items()}
        out["ratio_adaptive_always"] = self.ratio_adaptive_always
        out["peak_mem_kind"] = self.peak_mem_kind
        out["epoch_images"] = self.epoch_images
        out["config"] = {**asdict(self.config), "strategies": list(self.config.strategies)}
        out["machine"] = self.machine
        return out


# ----------------------------------------------------------------------------- memory
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


# ----------------------------------------------------------------------------- building
def synthetic_loader(cfg: BenchConfig, device: torch.device, images: int) -> DeviceLoader:
    """Random uint8 images in the on-device loader with CIFAR's augmentation (pad, crop, flip)."""
    generator = torch.Generator().manual_seed(cfg.seed)
    n = max(images, cfg.batch_size)
    shape = (n, 3, cfg.input_size, cfg.input_size)
    pixels = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, cfg.num_classes, (n,), generator=generator)
    labels[: cfg.num_classes] = torch.arange(min(n, cfg.num_classes))  # every class present
    return DeviceLoader(
        pixels, labels, cfg.batch_size, device, train=True,
        augment=AugmentSpec(pad=max(1, cfg.input_size // 8), random_crop=True, flip=True),
        mean=CIFAR_MEAN, std=CIFAR_STD, seed=cfg.seed, drop_last=True,
        channels_last=cfg.channels_last,
    )


def build_step(
    cfg: BenchConfig, strategy: str, device: torch.device, loader: DeviceLoader
) -> DistillStep:
    """A training step with fresh models (seeded: every strategy starts from the same weights).

    Distillers with a preparation phase (FT's paraphraser pretraining) are not prepared: it
    runs once before training and does not change the cost of a step.
    """
    torch.manual_seed(cfg.seed)
    place = {"channels_last": cfg.channels_last, "compile": cfg.compile}
    teacher = place_model(create_model(cfg.teacher, cfg.num_classes), device, **place)
    student = place_model(create_model(cfg.student, cfg.num_classes), device, **place)
    example_x = first_batch(loader)[0][:2]
    with torch.no_grad():
        feats_s = student.eval()(example_x, return_features=True)[0]
        feats_t = teacher.eval()(example_x, return_features=True)[0]
    student.train()
    available = {"labels": loader.labels.cpu(), "num_samples": loader.num_samples}
    options = {k: available[k] for k in distiller_options(cfg.distiller) if k in available}
    distiller = create_distiller(cfg.distiller, feats_s, feats_t, **options)
    generator = torch.Generator(device).manual_seed(cfg.seed)
    return build_distill_step(
        student, teacher, distiller, strategy, example_x, DistillConfig(), generator=generator,
        autocast=autocast_enabled(cfg.autocast, device), channels_last=cfg.channels_last,
        fold_batchnorm=cfg.fold_batchnorm,
    )


def first_batch(loader: DeviceLoader) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The first batch of epoch 0, leaving the loader's epoch counter as it was."""
    epoch = loader.epoch
    loader.set_epoch(0)
    batch = next(iter(loader))
    loader.set_epoch(epoch)
    return batch


# ----------------------------------------------------------------------------- timing
def _sync(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def rotations(names: Sequence[str], rounds: int) -> Iterator[list[str]]:
    """`rounds` orders of `names`, each rotated by one from the previous (fair interleaving)."""
    names = list(names)
    for r in range(rounds):
        k = r % len(names)
        yield names[k:] + names[:k]


def interleaved_step_times(
    calls: Mapping[str, Callable[[], object]],
    steps: int,
    warmup: int,
    sync: Callable[[], None],
    memory: PeakMemory,
) -> tuple[dict[str, list[float]], dict[str, tuple[float, float | None]]]:
    """Seconds of each timed call per name, and each name's highest `memory.stop()` (MiB)."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    sync()
    times: dict[str, list[float]] = {name: [] for name in calls}
    peaks: dict[str, tuple[float, float | None]] = dict.fromkeys(calls, (0.0, None))
    for order in rotations(list(calls), steps):
        for name in order:
            memory.start()
            started = time.perf_counter()
            calls[name]()
            sync()
            times[name].append(time.perf_counter() - started)
            peaks[name] = _higher(peaks[name], memory.stop())
    return times, peaks


def _higher(
    a: tuple[float, float | None], b: tuple[float, float | None]
) -> tuple[float, float | None]:
    added = [v for v in (a[1], b[1]) if v is not None]
    return max(a[0], b[0]), (max(added) if added else None)


def interleaved_epoch_times(
    steps: Mapping[str, Callable[..., dict[str, torch.Tensor]]],
    loader: DeviceLoader,
    sync: Callable[[], None],
) -> dict[str, tuple[list[float], float]]:
    """One epoch per name, batches interleaved across names: (seconds of each batch, seconds
    of the epoch-end reduction). A batch's time includes making it (crop, flip, normalise);
    the reduction is the training loop's one host sync of the summed step statistics. Each
    name iterates its own epoch of the loader (same cost, other augmentation)."""
    iterators = {name: iter(loader) for name in steps}
    batch_times: dict[str, list[float]] = {name: [] for name in steps}
    sums: dict[str, dict[str, torch.Tensor]] = {name: {} for name in steps}
    n_batches = len(loader)
    sync()
    for order in rotations(list(steps), n_batches):
        for name in order:
            started = time.perf_counter()
            x, y, index = next(iterators[name])
            stats = steps[name](x, y, index)
            acc = sums[name]
            for key, value in stats.items():
                acc[key] = value if key not in acc else acc[key] + value
            sync()
            batch_times[name].append(time.perf_counter() - started)
    out = {}
    for name, acc in sums.items():
        started = time.perf_counter()
        torch.cat([v.detach().float().reshape(-1) for v in acc.values()]).cpu()
        out[name] = (batch_times[name], time.perf_counter() - started)
    return out


# ----------------------------------------------------------------------------- driver
def machine_info(device: torch.device) -> dict[str, Any]:
    """Where the figures come from: CPU/GPU model, cores, threads, torch, load average."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "load_avg": [round(v, 2) for v in os.getloadavg()],
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def resolve_bench_device(name: str) -> torch.device:
    device = torch.device("cuda" if name == "auto" and torch.cuda.is_available() else
                          "cpu" if name == "auto" else name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"bench device {name!r}: CUDA is not available here")
    return device


def run_bench(cfg: BenchConfig, log: Callable[[str], None] = lambda _: None) -> BenchResult:
    """Time cfg.strategies (interleaved) and one epoch each; see the module docstring."""
    device = resolve_bench_device(cfg.device)
    saved_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        epoch_images = cfg.images_per_epoch(device)
        loader = synthetic_loader(cfg, device, epoch_images)
        log(f"building {cfg.teacher} -> {cfg.student} ({cfg.distiller}) for "
            f"{', '.join(cfg.strategies)} on {device}")
        steps = {s: build_step(cfg, s, device, loader) for s in cfg.strategies}
        x, y, index = first_batch(loader)
        calls = {s: (lambda st=st: st(x, y, index)) for s, st in steps.items()}
        memory = PeakMemory(device)
        machine = machine_info(device)
        log(f"timing {cfg.steps} interleaved steps after {cfg.warmup} warm-up steps each")
        times, peaks = interleaved_step_times(calls, cfg.steps, cfg.warmup, _sync(device), memory)
        used = len(loader) * cfg.batch_size if epoch_images >= cfg.batch_size else 0
        epochs = {}
        if used:
            log(f"timing one epoch of {used} images per strategy")
            epochs = interleaved_epoch_times(steps, loader, _sync(device))
        machine["load_avg_after"] = [round(v, 2) for v in os.getloadavg()]
        results = {
            s: _summarise(times[s], peaks[s], cfg.batch_size, epochs.get(s), used)
            for s in cfg.strategies
        }
        return BenchResult(cfg, results, machine, memory.kind, used)
    finally:
        torch.set_num_threads(saved_threads)


def _summarise(
    times: list[float],
    peak: tuple[float, float | None],
    batch: int,
    epoch: tuple[list[float], float] | None,
    epoch_images: int,
) -> StrategyResult:
    median = statistics.median(times)
    ordered = sorted(times)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    result = StrategyResult(
        median_step_s=median, images_per_s=batch / median, peak_mem_mb=peak[0],
        step_mem_mb=peak[1],
        min_step_s=ordered[0], p90_step_s=p90, steps=len(times),
    )
    if epoch is not None:
        batch_times, reduce_s = epoch
        result.epoch_s = sum(batch_times) + reduce_s
        result.epoch_images_per_s = epoch_images / result.epoch_s
        result.epoch_median_s = len(batch_times) * statistics.median(batch_times) + reduce_s
    return result


def format_table(result: BenchResult) -> str:
    """A plain-text table of the result, with the configuration and machine underneath."""
    cfg, m = result.config, result.machine
    head = (f"{'strategy':<10} {'median s/step':>13} {'min':>7} {'p90':>7} {'img/s':>8} "
            f"{'peak MiB':>9} {'step MiB':>9} {'epoch s':>8} {'(median)':>8}")
    lines = [head, "-" * len(head)]
    for name, r in result.strategies.items():
        epoch = _or_dash(r.epoch_s, 8, 2)
        lines.append(f"{name:<10} {r.median_step_s:13.3f} {r.min_step_s:7.3f} "
                     f"{r.p90_step_s:7.3f} {r.images_per_s:8.1f} {r.peak_mem_mb:9.0f} "
                     f"{_or_dash(r.step_mem_mb, 9, 0)} {epoch} "
                     f"{_or_dash(r.epoch_median_s, 8, 2)}")
    ratio = result.ratio_adaptive_always
    if ratio is not None:
        lines.append(f"adaptive / always = {ratio:.2f}")
    lines.append(
        f"{cfg.teacher} -> {cfg.student} ({cfg.distiller}), batch {cfg.batch_size}, "
        f"{cfg.input_size}x{cfg.input_size}, {result_device(m)}, threads {m['torch_threads']}, "
        f"channels_last {cfg.channels_last}, autocast {cfg.autocast}, compile {cfg.compile}, "
        f"fold_bn {cfg.fold_batchnorm}; "
        f"{cfg.steps} steps after {cfg.warmup} warm-up; epoch = {result.epoch_images} images; "
        f"peak memory: {result.peak_mem_kind}; load avg {m['load_avg']} -> "
        f"{m['load_avg_after']}"
    )
    return "\n".join(lines)


def _or_dash(value: float | None, width: int, digits: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:{width}.{digits}f}"


def result_device(machine: Mapping[str, Any]) -> str:
    if "gpu" in machine:
        return f"{machine['device']} ({machine['gpu']})"
    return f"cpu ({machine['cpu']}, {machine['cpu_count']} cores)"
