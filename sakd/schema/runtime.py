"""The `runtime` and `tracking` sections of params.yaml: where tensors run, where runs are
recorded."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import Field, model_validator

from sakd.schema.base import ConfigModel, Device
from sakd.schema.errors import ConfigError


class RuntimeConfig(ConfigModel):
    """Where and how tensors run. `auto` picks CUDA when present."""

    device: Device = "auto"  # auto | cpu | cuda | cuda:N | mps
    channels_last: bool = False  # NHWC: faster, but less accurate on CPU (docs/precision.md)
    autocast: bool = False  # fp32 as the paper; True: bf16 on CUDA (a speed option)
    compile: bool = False
    deterministic: bool = True
    threads: Annotated[int, Field(ge=0, le=4096)] = 0  # CPU threads; 0 = torch's default
    # the launch-bound fast path (docs/bench.md); off by default: not faster on CPU
    capture: bool = False  # torch.compile of the whole distillation step (CUDA graphs on CUDA)
    fused_optimizer: bool = False  # fused SGD on CUDA, foreach (multi-tensor) SGD elsewhere
    nproc: Annotated[int, Field(ge=1, le=1024)] = 1  # > 1: pretrain/distill relaunch via torchrun

    @model_validator(mode="after")
    def _one_compile(self) -> RuntimeConfig:
        if self.capture and self.compile:
            raise ConfigError("capture", "capture compiles the whole distillation step; "
                              "set runtime.compile: false with it (each stage compiled twice)")
        return self


class TrackingConfig(ConfigModel):
    """MLflow. uri None = sqlite:///<repo>/mlflow.db; the MLFLOW_TRACKING_URI env var wins."""

    uri: str | None = None
    experiment_prefix: Annotated[str, Field(min_length=1)] = "sakd"
    system_metrics: bool = False  # MLflow's CPU/memory/GPU sampling per run (a thread; slower)
    timeout_s: Annotated[float, Field(gt=0)] = 60.0  # a silent HTTP server: give up (seconds)
    # added later: its default leaves every existing config hash as it was
    hash_neutral_defaults: ClassVar[dict[str, Any]] = {"timeout_s": 60.0}
