"""What every `sakd` command shares: the --params/--root/--quiet/--force options, the exit-2
handling of bad input, and reading params.yaml from the project root."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from pipeline.errors import user_error_types
from pipeline.paths import find_root

if TYPE_CHECKING:
    from sakd.schema import ConfigModel

F = TypeVar("F", bound=Callable)
P = TypeVar("P", bound="ConfigModel")

ParamsOpt = Annotated[
    Path, typer.Option("--params", "-p", help="params file (default: params.yaml at the root)")
]
RootOpt = Annotated[
    Path | None, typer.Option("--root", help="project root (default: nearest with params.yaml)")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")]
ForceOpt = Annotated[bool, typer.Option(
    "--force", help="retrain a finished cell (its checkpoint and a FINISHED MLflow run of the "
    "same params exist); its earlier runs are kept, tagged sakd.superseded_by")]


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


def load_context(params_path: Path, root: Path | None, sections: type[P]) -> tuple[P, Path]:
    """(the params sections a command reads, validated; project root); --params is relative
    to the root. `sections`: sakd.config.Params (the whole file) or a stage's view of it
    (sakd.schema.PretrainParams): a stage validates, and so imports the code behind, only what
    it reads."""
    from pipeline.settings import read_params

    root = (root or find_root()).resolve()
    path = params_path if params_path.is_absolute() else root / params_path
    return read_params(path, sections), root
