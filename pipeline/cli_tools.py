"""The `sakd` tools beside the DVC stages: `tune` (the sensitivity study), `bench`, `queue`
(stages N at a time) and `preset` (switch to a paper experiment)."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.cli_common import ParamsOpt, QuietOpt, RootOpt, load_context, user_errors_exit_2
from pipeline.errors import UserError
from pipeline.paths import find_root
from sakd.schema import TIMING_KEYS, TIMING_RUNTIME, RuntimeConfig


def _switch(name: str, help: str) -> Any:
    """A `--name/--no-name` boolean option."""
    return typer.Option(f"--{name}/--no-{name}", help=help)


@user_errors_exit_2
def tune(
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", help="worker processes here (default: sensitivity.workers)"),
    ] = None,
    n_trials: Annotated[
        int | None,
        typer.Option("--n-trials", help="trials in total, finished ones included "
                     "(default: sensitivity.n_trials)"),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option("--storage", help="Optuna storage URL shared by all workers (default: "
                     "$SAKD_OPTUNA_STORAGE, else sensitivity.storage)"),
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Sensitivity study over beta3 and the tau schedule (Fig. 4); re-running continues it."""
    from pipeline.tune import run_tune
    from sakd.config import Params

    p, root_dir = load_context(params, root, Params)
    m = run_tune(p, root_dir, n_trials=n_trials, workers=workers, storage=storage,
                 progress=not quiet)
    best = ("no complete trial" if m["best_value"] is None else
            f"best {m['best_value']:.2f}% (trial {m['best_trial']}: "
            + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in m["best_params"].items()) + ")")
    typer.echo(f"study {m['study']}: {best}; {m['n_complete']} complete, {m['n_pruned']} "
               f"pruned, {m['n_failed']} failed; wrote reports/sensitivity.md")


def _runtime_options(command: Callable[..., None]) -> Callable[..., None]:
    """`command` with the runtime section's timing keys as options (sakd.schema.TIMING_KEYS:
    the schema's types and help, TIMING_RUNTIME's defaults); it receives them as `runtime`."""
    extra = []
    for key in TIMING_KEYS:
        default, name = getattr(TIMING_RUNTIME, key), key.replace("_", "-")
        help = RuntimeConfig.model_fields[key].description
        option = (_switch(name, help) if isinstance(default, bool) else
                  typer.Option(f"--{name}", help=help))
        extra.append(inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=default,
                                       annotation=Annotated[type(default), option]))

    @functools.wraps(command)
    def with_runtime(*args: Any, **kwargs: Any) -> None:
        command(*args, runtime={key: kwargs.pop(key) for key in TIMING_KEYS}, **kwargs)

    hints = typing.get_type_hints(command, include_extras=True)
    own = [p.replace(annotation=hints[p.name])
           for p in inspect.signature(command).parameters.values() if p.name != "runtime"]
    params = own + extra
    with_runtime.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    with_runtime.__annotations__ = {p.name: p.annotation for p in params}
    return with_runtime


@user_errors_exit_2
@_runtime_options
def bench(
    teacher: Annotated[str, typer.Option("--teacher", help="teacher architecture")] = "resnet56",
    student: Annotated[str, typer.Option("--student", help="student architecture")] = "resnet20",
    distiller: Annotated[str, typer.Option("--distiller", help="kd, dkd, fitnet, at, ...")] = "at",
    batch_size: Annotated[int, typer.Option("--batch-size")] = 64,
    input_size: Annotated[int, typer.Option("--input-size", help="square input side")] = 32,
    num_classes: Annotated[int, typer.Option("--num-classes")] = 100,
    steps: Annotated[int, typer.Option("--steps", help="timed steps per strategy")] = 20,
    warmup: Annotated[int, typer.Option("--warmup", help="untimed steps first")] = 3,
    fold_bn: Annotated[bool, _switch("fold-bn", "BN folded into convs in eval passes")] = True,
    concurrent: Annotated[
        int, typer.Option("--concurrent", help="run k copies at once on the device; report "
                          "aggregate images/s")
    ] = 1,
    epoch_images: Annotated[
        int | None,
        typer.Option("--epoch-images", help="images in the timed epoch (default: 50,000 on "
                     "CUDA, 10 batches on CPU; 0: skip)"),
    ] = None,
    strategies: Annotated[
        str, typer.Option("--strategies", help="comma-separated")
    ] = "never,always,adaptive",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="also write the figures as JSON here")
    ] = None,
    *,
    runtime: dict[str, Any],
) -> None:
    """Time the distillation step per strategy (interleaved; median) and one epoch each."""
    from pipeline.bench import make_config, run_bench_command

    cfg = make_config(
        teacher=teacher, student=student, distiller=distiller, batch_size=batch_size,
        input_size=input_size, num_classes=num_classes, steps=steps, warmup=warmup,
        fold_batchnorm=fold_bn, concurrent=concurrent, epoch_images=epoch_images, **runtime,
        strategies=tuple(s.strip() for s in strategies.split(",") if s.strip()), seed=seed,
    )
    run_bench_command(cfg, json_path, log=typer.echo)


@user_errors_exit_2
def queue(
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="stages running at once (DVC queue "
                                      "workers), each on its own GPU or share of the cores")] = 2,
    part: Annotated[
        str, typer.Option("--slice", help="i/m: this machine's share of each wave (1/2, 2/2); "
                          "then `dvc push --run-cache`, and one machine repros the rest")
    ] = "1/1",
    pull: Annotated[bool, typer.Option("--pull", help="restore stages other machines ran "
                                       "from the DVC remote (after `dvc fetch --run-cache`)")
                    ] = False,
    root: RootOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the DVC commands only")
                       ] = False,
) -> None:
    """Run the study's independent stages N at a time through DVC's experiment queue (teachers,
    then distillation stages and the sensitivity study), then `dvc repro` restores them all
    from the run-cache and writes the report."""
    from pipeline.queue import Slice, run_queue

    run_queue(root or find_root(), jobs, Slice.parse(part), dry_run=dry_run, echo=typer.echo,
              pull=pull)


@user_errors_exit_2
def preset(
    name: Annotated[
        str | None,
        typer.Argument(help="a preset in configs/ (e.g. cifar100_homogeneous) or a params file"),
    ] = None,
    list_presets: Annotated[
        bool, typer.Option("--list", help="list the presets with their first comment line")
    ] = False,
    dvc_args: Annotated[
        bool, typer.Option("--dvc-args", help="print `dvc exp run -S` overrides instead of "
                           "writing params.yaml: `... --dvc-args | xargs dvc exp run --queue`")
    ] = False,
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = None,
) -> None:
    """Switch params.yaml to a paper experiment (validated first, then written atomically)."""
    from pipeline import preset as presets

    root_dir = (root or find_root()).resolve()
    if list_presets:
        found = presets.list_presets(root_dir)
        if not found:
            raise UserError(f"no presets in {root_dir / presets.PRESETS_DIR}")
        width = max((len(p.name) for p in found), default=0)
        for p in found:
            typer.echo(f"{p.name:<{width}}  {p.summary}")
        return
    if name is None:
        raise UserError("name a preset (see `sakd preset --list`) or a params file")
    source = presets.resolve_preset(name, root_dir)
    target = params if params.is_absolute() else root_dir / params
    if dvc_args:
        from pipeline.preset_args import preset_dvc_args

        typer.echo(" ".join(preset_dvc_args(source, target)))
        return
    change = presets.apply_preset(source, target)
    for line in presets.describe_change(change):
        typer.echo(line)
