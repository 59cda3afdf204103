"""The `sakd` command line: one command per pipeline stage, usable with or without DVC."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli_common import (
    ForceOpt,
    ParamsOpt,
    QuietOpt,
    RootOpt,
    load_context,
    user_errors_exit_2,
)
from pipeline.cli_deploy import compression, export, register
from pipeline.cli_tools import bench, preset, queue, tune
from pipeline.errors import UserError
from pipeline.names import check_names

app = typer.Typer(
    help="Spot-adaptive knowledge distillation (SAKD): pipeline stages and tools.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.command()
@user_errors_exit_2
def check(
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = None,
    schema: Annotated[bool, typer.Option(
        "--schema", help="print the JSON schema of params.yaml (for editors) and exit")] = False,
) -> None:
    """Validate params.yaml (unknown keys, types, values, names) and print a summary."""
    if schema:
        import json

        from sakd.config import params_json_schema

        typer.echo(json.dumps(params_json_schema(), indent=2))
        return
    from sakd.config import Params

    p, _ = load_context(params, root, Params)
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
    from sakd.schema import DataParams

    check_names(dataset=dataset)
    p, root_dir = load_context(params, root, DataParams)
    path = run_fetch(p, root_dir, dataset)
    typer.echo(f"ready: {path}")


@app.command()
@user_errors_exit_2
def pretrain(
    arch: Annotated[str, typer.Option("--arch", help="architecture from runs.pretrain")],
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = None,
    quiet: QuietOpt = False,
    force: ForceOpt = False,
) -> None:
    """Train one architecture alone (teachers; students alone = the paper's S row); a
    finished one is reported, not retrained (unless --force)."""
    from pipeline.launch import relaunch_if_asked
    from pipeline.pretrain import run_pretrain
    from sakd.schema import PretrainParams

    check_names(arch=arch)
    p, root_dir = load_context(params, root, PretrainParams)
    relaunch_if_asked(p)
    m = run_pretrain(p, arch, root_dir, progress=not quiet, force=force)
    if m:  # empty on ranks > 0 of a torchrun launch: rank 0 reports
        typer.echo(f"{arch}: final top-1 {m['top1']:.2f}% (val {m['val_top1']:.2f}%)")


@app.command()
@user_errors_exit_2
def distill(
    teacher: Annotated[str, typer.Option("--teacher", help="teacher architecture")],
    student: Annotated[str, typer.Option("--student", help="student architecture")],
    distiller: Annotated[str, typer.Option("--distiller", help="kd, dkd, fitnet, at, ...")],
    strategy: Annotated[str, typer.Option("--strategy", help="adaptive|always|anti|random|never")],
    seed: Annotated[
        list[int] | None,
        typer.Option("--seed", help="a seed to run (repeat for several); default: runs.seeds"),
    ] = None,
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = None,
    quiet: QuietOpt = False,
    force: ForceOpt = False,
) -> None:
    """Distill one teacher -> student pair with one distiller and strategy, seed after seed
    (each seed its own MLflow run and checkpoint); a finished seed is reported, not retrained
    (unless --force)."""
    from pipeline.distill import run_distill_cell
    from pipeline.launch import relaunch_if_asked
    from sakd.config import Params

    check_names(teacher=teacher, student=student, distiller=distiller, strategy=strategy)
    p, root_dir = load_context(params, root, Params)
    relaunch_if_asked(p)

    def say(k: int, m: dict) -> None:
        if m:  # empty on ranks > 0 of a torchrun launch: rank 0 reports
            typer.echo(f"{teacher}->{student} {distiller}/{strategy} seed {k}: final top-1 "
                       f"{m['top1']:.2f}% (val {m['val_top1']:.2f}%)")

    run_distill_cell(p, root_dir, teacher, student, distiller, strategy,
                     seed if seed else p.runs.seeds, progress=not quiet, on_seed=say,
                     force=force)


@app.command()
@user_errors_exit_2
def evaluate(params: ParamsOpt = Path("params.yaml"), root: RootOpt = None) -> None:
    """Top-1/top-5 on the test split for every pretrained model and distilled student."""
    from pipeline.evaluate import run_evaluate
    from sakd.config import Params

    p, root_dir = load_context(params, root, Params)
    out = run_evaluate(p, root_dir)
    typer.echo(f"wrote {out}")


@app.command()
@user_errors_exit_2
def report(params: ParamsOpt = Path("params.yaml"), root: RootOpt = None) -> None:
    """Write reports/results.md (paper-style tables) and the per-spot routing figures."""
    from pipeline.report import run_report
    from sakd.schema import DataParams

    p, root_dir = load_context(params, root, DataParams)
    dataset = p.data.dataset
    out = root_dir / "reports" / "results.md"
    run_report(root_dir, dataset, out, root_dir / "plots" / "report" / dataset)
    typer.echo(f"wrote {out}")


app.command()(preset)
app.command()(tune)
app.command()(queue)
app.command()(bench)
app.command()(compression)
app.command()(register)
app.command()(export)


def main() -> None:  # pragma: no cover - console entry
    try:
        app()
    except UserError as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        sys.exit(2)


if __name__ == "__main__":  # python -m pipeline.cli
    main()
