"""`sakd bench`: seconds per iteration and peak memory of the distillation step, per strategy.

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

Modules: config (what to time, the result document), step (the timed step), timing
(interleaving), memory (peak memory), machine (device and machine description), run (the
driver), report (the printed table), concurrent (k copies at once on one device: aggregate
images/s). The harness is a tool outside the library: sakd/ never
imports it.
"""

from benchmarks.config import BenchConfig, BenchResult, StrategyResult
from benchmarks.report import format_table
from benchmarks.run import run_bench

__all__ = ["BenchConfig", "BenchResult", "StrategyResult", "format_table", "run_bench"]
