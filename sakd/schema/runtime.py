"""The `runtime` and `tracking` sections of params.yaml: where tensors run, where runs are
recorded."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import Field, model_validator

from sakd.schema.base import ConfigModel, Device
from sakd.schema.errors import ConfigError


class RuntimeConfig(ConfigModel):
    """Where and how tensors run. `auto` picks CUDA when present."""

    device: Device = Field("auto", description="auto | cpu | cuda | cuda:N | mps")
    channels_last: bool = Field(False, description="NHWC layout: faster, but less accurate on "
                                "CPU (docs/precision.md)")
    autocast: bool = Field(False, description="bf16 autocast on CUDA (a speed option; fp32 is "
                           "the paper's)")
    compile: bool = Field(False, description="torch.compile each network stage")
    deterministic: bool = True
    threads: Annotated[int, Field(ge=0, le=4096)] = Field(
        0, description="torch CPU threads (0: torch's default)")
    # the launch-bound fast path (docs/bench.md); off by default: not faster on CPU
    capture: bool = Field(False, description="compile the whole distillation step (CUDA "
                          "graphs on CUDA)")
    fused_optimizer: bool = Field(False, description="fused SGD on CUDA, foreach SGD elsewhere")
    nproc: Annotated[int, Field(ge=1, le=1024)] = 1  # > 1: pretrain/distill relaunch via torchrun

    @model_validator(mode="after")
    def _one_compile(self) -> RuntimeConfig:
        if self.capture and self.compile:
            raise ConfigError("capture", "capture compiles the whole distillation step; "
                              "set runtime.compile: false with it (each stage compiled twice)")
        return self


TIMING_KEYS = ("device", "threads", "channels_last", "autocast", "compile", "capture",
               "fused_optimizer")
"""The runtime keys a timing of the step takes (`sakd bench`: its options and config);
deterministic and nproc do not apply to a timing."""

TIMING_RUNTIME = RuntimeConfig(channels_last=True, autocast=True)
"""The runtime a timing defaults to: the defaults above but two, and why: `sakd bench` times the
fast path a GPU run would choose (NHWC + bf16 autocast, docs/bench.md; autocast acts on CUDA
only), while runs keep the paper's fp32 NCHW."""


class TrackingConfig(ConfigModel):
    """MLflow. uri None = sqlite:///<repo>/mlflow.db; the MLFLOW_TRACKING_URI env var wins."""

    uri: str | None = None
    experiment_prefix: Annotated[str, Field(min_length=1)] = "sakd"
    system_metrics: bool = False  # MLflow's CPU/memory/GPU sampling per run (a thread; slower)
    timeout_s: Annotated[float, Field(gt=0)] = 60.0  # a silent HTTP server: give up (seconds)
    # added later: its default leaves every existing config hash as it was
    hash_neutral_defaults: ClassVar[dict[str, Any]] = {"timeout_s": 60.0}
