"""The `sakd` command line: one command per pipeline stage, usable with or without DVC."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from pipeline.errors import UserError, user_error_types
from pipeline.paths import find_root

app = typer.Typer(
    help="Spot-adaptive knowledge distillation (SAKD): pipeline stages and tools.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

F = TypeVar("F", bound=Callable)

ParamsOpt = Annotated[
    Path, typer.Option("--params", "-p", help="params file (default: params.yaml at the root)")
]
RootOpt = Annotated[
    Path | None, typer.Option("--root", help="project root (default: nearest with params.yaml)")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")]


def user_errors_exit_2(fn: F) -> F:
    """Bad input prints one clear line on stderr and exits 2; bugs keep their traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except user_error_types() as err:
            typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _context(params_path: Path, root: Path | None):
    from pipeline.settings import read_params

    root = (root or find_root()).resolve()
    path = params_path if params_path.is_absolute() else root / params_path
    return read_params(path), root


@app.command()
@user_errors_exit_2
def check(params: ParamsOpt = Path("params.yaml"), root: RootOpt = None) -> None:
    """Validate params.yaml (unknown keys, types, values, names) and print a summary."""
    p, _ = _context(params, root)
    d = p.runs
    runs = len(d.pairs) * len(d.distillers) * len(d.strategies) * len(d.seeds)
    typer.echo(
        f"ok: dataset {p.data.dataset}; pretrain {len(d.pretrain)} models; "
        f"distill {runs} runs ({len(d.pairs)} pairs x {len(d.distillers)} distillers x "
        f"{len(d.strategies)} strategies x {len(d.seeds)} seeds)"
    )


@app.command()
@user_errors_exit_2
def fetch(
    dataset: Annotated[str | None, typer.Argument(help="dataset (default: data.dataset)")] = None,
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = None,
) -> None:
    """Download (or accept a placed file), verify and prepare a dataset under data/."""
    from pipeline.fetch import run_fetch

    p, root_dir = _context(params, root)
    path = run_fetch(p, root_dir, dataset)
    typer.echo(f"ready: {path}")


@app.command()
@user_errors_exit_2
def pretrain(
    arch: Annotated[str, typer.Option("--arch", help="architecture from runs.pretrain")],
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train one architecture alone (teachers; students alone = the paper's S row)."""
    from pipeline.pretrain import run_pretrain

    p, root_dir = _context(params, root)
    m = run_pretrain(p, arch, root_dir, progress=not quiet)
    typer.echo(f"{arch}: final top-1 {m['top1']:.2f}% (best {m['best_top1']:.2f}%)")


@app.command()
@user_errors_exit_2
def distill(
    teacher: Annotated[str, typer.Option("--teacher", help="teacher architecture")],
    student: Annotated[str, typer.Option("--student", help="student architecture")],
    distiller: Annotated[str, typer.Option("--distiller", help="kd, fitnet, at, ...")],
    strategy: Annotated[str, typer.Option("--strategy", help="adaptive|always|anti|random|never")],
    seed: Annotated[int, typer.Option("--seed")] = 0,
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Distill one teacher -> student pair with one distiller and strategy."""
    from pipeline.distill import run_distill

    p, root_dir = _context(params, root)
    m = run_distill(p, root_dir, teacher, student, distiller, strategy, seed, progress=not quiet)
    typer.echo(
        f"{teacher}->{student} {distiller}/{strategy} seed {seed}: final top-1 "
        f"{m['top1']:.2f}% (best {m['best_top1']:.2f}%)"
    )


@app.command()
@user_errors_exit_2
def evaluate(params: ParamsOpt = Path("params.yaml"), root: RootOpt = None) -> None:
    """Top-1/top-5 on the test split for every pretrained model and distilled student."""
    from pipeline.evaluate import run_evaluate

    p, root_dir = _context(params, root)
    out = run_evaluate(p, root_dir)
    typer.echo(f"wrote {out}")


@app.command()
@user_errors_exit_2
def report(params: ParamsOpt = Path("params.yaml"), root: RootOpt = None) -> None:
    """Write reports/results.md (paper-style tables) and the per-spot routing figures."""
    from pipeline.report import run_report

    p, root_dir = _context(params, root)
    dataset = p.data.dataset
    out = root_dir / "reports" / "results.md"
    run_report(root_dir, dataset, out, root_dir / "plots" / "report" / dataset)
    typer.echo(f"wrote {out}")


@app.command()
@user_errors_exit_2
def preset(
    name: Annotated[
        str | None,
        typer.Argument(help="a preset in configs/ (e.g. cifar100_homogeneous) or a params file"),
    ] = None,
    list_presets: Annotated[
        bool, typer.Option("--list", help="list the presets with their first comment line")
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
    change = presets.apply_preset(source, target)
    for line in presets.describe_change(change):
        typer.echo(line)


@app.command()
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

    p, root_dir = _context(params, root)
    m = run_tune(p, root_dir, n_trials=n_trials, workers=workers, storage=storage,
                 progress=not quiet)
    best = ("no complete trial" if m["best_value"] is None else
            f"best {m['best_value']:.2f}% (trial {m['best_trial']}: "
            + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in m["best_params"].items()) + ")")
    typer.echo(f"study {m['study']}: {best}; {m['n_complete']} complete, {m['n_pruned']} "
               f"pruned, {m['n_failed']} failed; wrote reports/sensitivity.md")


@app.command()
@user_errors_exit_2
def bench(
    teacher: Annotated[str, typer.Option("--teacher", help="teacher architecture")] = "resnet56",
    student: Annotated[str, typer.Option("--student", help="student architecture")] = "resnet20",
    distiller: Annotated[str, typer.Option("--distiller", help="kd, fitnet, at, ...")] = "at",
    batch_size: Annotated[int, typer.Option("--batch-size")] = 64,
    input_size: Annotated[int, typer.Option("--input-size", help="square input side")] = 32,
    num_classes: Annotated[int, typer.Option("--num-classes")] = 100,
    steps: Annotated[int, typer.Option("--steps", help="timed steps per strategy")] = 20,
    warmup: Annotated[int, typer.Option("--warmup", help="untimed steps first")] = 3,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda[:N]")] = "auto",
    threads: Annotated[
        int, typer.Option("--threads", help="torch CPU threads (0: torch's default)")
    ] = 0,
    channels_last: Annotated[
        bool, typer.Option("--channels-last/--no-channels-last", help="NHWC layout")
    ] = True,
    autocast: Annotated[
        bool, typer.Option("--autocast/--no-autocast", help="bf16 autocast (CUDA only)")
    ] = True,
    compile_: Annotated[
        bool, typer.Option("--compile/--no-compile", help="torch.compile each network stage")
    ] = False,
    fold_bn: Annotated[
        bool, typer.Option("--fold-bn/--no-fold-bn", help="BN folded into convs in eval passes")
    ] = True,
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
) -> None:
    """Time the distillation step per strategy (interleaved; median) and one epoch each."""
    from pipeline.bench import make_config, run_bench_command

    cfg = make_config(
        teacher=teacher, student=student, distiller=distiller, batch_size=batch_size,
        input_size=input_size, num_classes=num_classes, steps=steps, warmup=warmup,
        device=device, threads=threads, channels_last=channels_last, autocast=autocast,
        compile=compile_, fold_batchnorm=fold_bn, epoch_images=epoch_images,
        strategies=tuple(s.strip() for s in strategies.split(",") if s.strip()), seed=seed,
    )
    run_bench_command(cfg, json_path, log=typer.echo)


def main() -> None:  # pragma: no cover - console entry
    try:
        app()
    except UserError as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        sys.exit(2)


if __name__ == "__main__":  # python -m pipeline.cli
    main()
