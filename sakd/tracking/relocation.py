"""A local MLflow store that moved: a copied or cloned project with its `mlflow.db` and `mlruns/`.

MLflow records every artifact location as an absolute path: `create_experiment` turns a relative
location into an absolute one against the working directory (mlflow PR #7670), and each run,
logged model and model version copies its experiment's absolute folder (a request to keep them
relative, mlflow issue #3144, is open). After a move the store still points at the old folder:
reads fail ("No such artifact") or, while the original exists, read and write the original.
MLflow has no API to change an experiment's location nor to resolve one against the store, so:

- reads (`readable_source`): the location MLflow recorded for a `models:/` or `runs:/` URI,
  and when that folder is gone but the same tail exists under the `mlruns/` beside the sqlite
  database, that folder instead (the store's layout is `mlruns/<experiment>/...`);
- writes (`rehome_experiment`): an experiment of a sqlite store whose recorded folder is sakd's
  layout `<old place>/mlruns/<experiment>` gets the moved store's own folder (one column of
  MLflow's `experiments` table), so new runs land in the copy, never in the original.

Stores behind a tracking server need none of this: with `mlflow server --serve-artifacts`
locations are `mlflow-artifacts:/...` URIs, relative to the server's `--artifacts-destination`.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from urllib.parse import unquote, urlsplit

ARTIFACTS_FOLDER = "mlruns"  # beside mlflow.db: sakd's layout of a local store


def sqlite_file(tracking_uri: str) -> Path | None:
    """The database file of a `sqlite:///<path>` store, None for any other store."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    return Path(tracking_uri[len(prefix):].split("?", 1)[0])


def local_path(location: str) -> Path | None:
    """The folder of a `file:` URI or plain absolute path, None for remote locations."""
    parts = urlsplit(location)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if parts.scheme == "" and location.startswith("/"):
        return Path(location)
    return None


def moved_location(location: str, artifacts: Path) -> str | None:
    """`location` (recorded by MLflow) moved under `artifacts`: the file URI of the same tail
    after the last `mlruns` folder when the recorded folder is gone and that one exists."""
    path = local_path(location)
    if path is None or path.exists():
        return None
    parts = path.parts
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == artifacts.name:
            candidate = artifacts.joinpath(*parts[i + 1:])
            if candidate.exists():
                return candidate.resolve().as_uri()
    return None


def recorded_location(uri: str, client) -> str | None:
    """The artifact folder MLflow recorded for `models:/<id or name@alias or name/version>` or
    `runs:/<run>/<model name or path>`; None for any other URI (MLflow resolves it itself)."""
    if uri.startswith("models:/"):
        ref = uri[len("models:/"):].strip("/")
        if ref.startswith("m-") and "/" not in ref:
            return client.get_logged_model(ref).artifact_location
        if "@" in ref:
            name, alias = ref.split("@", 1)
            return client.get_model_version_download_uri(
                name, client.get_model_version_by_alias(name, alias).version)
        name, _, version = ref.rpartition("/")
        return client.get_model_version_download_uri(name, version) if version.isdigit() else None
    if uri.startswith("runs:/"):
        run_id, _, path = uri[len("runs:/"):].strip("/").partition("/")
        run = client.get_run(run_id)
        for out in run.outputs.model_outputs if run.outputs else []:
            model = client.get_logged_model(out.model_id)
            if model.name == path:
                return model.artifact_location
        return f"{run.info.artifact_uri.rstrip('/')}/{path}" if path else run.info.artifact_uri
    return None


def readable_source(uri: str, tracking_uri: str) -> str:
    """What to download `uri` from: the URI itself, or for a moved sqlite store the folder
    under its own `mlruns/` that holds the model (`moved_location`)."""
    from mlflow import MlflowClient

    db = sqlite_file(tracking_uri)
    if db is None:
        return uri
    recorded = recorded_location(uri, MlflowClient(tracking_uri))
    moved = recorded and moved_location(recorded, db.resolve().parent / ARTIFACTS_FOLDER)
    return moved or uri


def rehome_experiment(tracking_uri: str, experiment_id: str, recorded: str, home: Path) -> str:
    """The experiment's artifact location for new runs: `recorded`, or `home` (the store's own
    `mlruns/<experiment>`) when the sqlite store moved: recorded is sakd's layout
    `<elsewhere>/mlruns/<experiment>`, and `home` sits beside the database. Written into
    MLflow's `experiments` table, since MLflow has no call that changes it."""
    db = sqlite_file(tracking_uri)
    path = local_path(recorded)
    home = home.resolve()
    if (db is None or path is None or home.parent != db.resolve().parent / ARTIFACTS_FOLDER
            or path.parts[-2:] != home.parts[-2:]):
        return recorded
    if path == home or (path.exists() and path.resolve() == home):
        return recorded
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn, conn:
        conn.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?",
                     (home.as_uri(), int(experiment_id)))
    return home.as_uri()
