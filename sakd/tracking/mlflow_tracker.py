"""The MLflow tracker: runs in MLflow's store (a sqlite file, a server), artifacts under the
experiment's artifact location, models as MLflow models. An error of the store's database
(not a database, locked, unreachable) becomes one TrackingStoreError (sakd.tracking_errors)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping
from pathlib import Path

from sakd.tracking.base import EXPERIMENT_KIND_TAG, Tracker, end_status
from sakd.tracking.relocation import rehome_experiment
from sakd.tracking.server import (
    give_up_at_once,
    is_http,
    limit_retries,
    timeout_seconds,
)
from sakd.tracking_errors import TrackingStoreError, guarded, store_errors


class MLflowTracker(Tracker):
    """Records to MLflow. `artifact_root` pins where new experiments keep artifacts;
    `default_tags` go on every new run (the caller's context, e.g. the DVC experiment);
    `timeout_s` bounds the retries against an HTTP server (sakd.tracking.server)."""

    def __init__(
        self, tracking_uri: str, artifact_root: Path | None = None,
        default_tags: Mapping[str, str] | None = None, system_metrics: bool = False,
        timeout_s: float | None = None,
    ) -> None:
        limit_retries(tracking_uri, timeout_seconds(timeout_s))  # before MLflow's first request
        import mlflow

        self._mlflow = mlflow
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        self.system_metrics = system_metrics  # MLflow's own CPU/memory/GPU sampler per run
        self.default_tags = dict(default_tags or {})
        mlflow.set_tracking_uri(tracking_uri)

    @property
    def run_id(self) -> str | None:  # type: ignore[override]
        run = self._mlflow.active_run()
        return run.info.run_id if run else None

    @guarded
    def open_store(self) -> None:
        """Tables are created on first use and MLflow's migration fails when two processes run
        it at once ("... 'alembic_version'"): whoever starts parallel workers opens it first."""
        self._client().search_experiments(max_results=1)

    def _experiment_id(self, name: str) -> str:
        client = self._client()
        exp = client.get_experiment_by_name(name)
        home = self._artifact_home(name)
        if exp is not None:
            if home is not None:  # a copied or cloned store: new runs land in the copy
                rehome_experiment(self.tracking_uri, exp.experiment_id, exp.artifact_location,
                                  home)
            return exp.experiment_id
        # one artifact folder per experiment: mlruns/<experiment>/<run id>/artifacts
        location = home.resolve().as_uri() if home is not None else None
        try:
            exp_id = client.create_experiment(
                name, artifact_location=location, tags=dict([EXPERIMENT_KIND_TAG])
            )
        except Exception:  # created meanwhile by a parallel process
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
            exp_id = exp.experiment_id
        return exp_id

    def _artifact_home(self, experiment: str) -> Path | None:
        """Where an experiment's artifacts go: under `artifact_root`, except behind a tracking
        server, which decides (`mlflow-artifacts:/` URIs with `--serve-artifacts`, so every
        machine reads what any machine logged)."""
        if self.artifact_root is None or is_http(self.tracking_uri):
            return None
        return self.artifact_root / experiment

    @contextlib.contextmanager
    def run(self, experiment, run_name, tags, params, run_id=None, nested=False):
        with store_errors(self.tracking_uri):  # not around the body: its errors are its own
            active = self._start(experiment, run_name, tags, params, run_id, nested)
        try:  # not `with active`: it ends every exception's run FAILED
            yield active.info.run_id
        except BaseException as err:
            if isinstance(err, TrackingStoreError):
                give_up_at_once(self.tracking_uri)  # a lost server: no second round of retries
            with contextlib.suppress(TrackingStoreError):  # err is the one to report
                self._end(end_status(err))
            raise
        self._end(end_status(None))

    @guarded
    def _end(self, status: str) -> None:
        self._mlflow.end_run(status)

    def _start(self, experiment, run_name, tags, params, run_id, nested):
        mlflow = self._mlflow
        if run_id is not None:
            active = mlflow.start_run(run_id=run_id, nested=nested,
                                      log_system_metrics=self.system_metrics)
        else:
            active = mlflow.start_run(
                experiment_id=self._experiment_id(experiment), run_name=run_name,
                tags={**self.default_tags, **tags}, nested=nested,
                log_system_metrics=self.system_metrics)
            # MLflow params are strings of at most 6000 chars; log in batches of 100.
            items = [(k, str(v)[:6000]) for k, v in params.items()]
            for i in range(0, len(items), 100):
                mlflow.log_params(dict(items[i : i + 100]))
        return active

    def _client(self):
        return self._mlflow.MlflowClient(self.tracking_uri)

    @guarded
    def find_runs(self, experiment, tags, status=None):
        client = self._client()
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            return []
        clauses = [f"tags.`{k}` = '{_quoted(v)}'" for k, v in tags.items()]
        if status:
            clauses.append(f"attributes.status = '{_quoted(status)}'")
        runs = client.search_runs([exp.experiment_id], " and ".join(clauses),
                                  order_by=["attributes.start_time DESC"])
        return [r.info.run_id for r in runs]

    @guarded
    def set_run_tags(self, run_id, tags):
        client = self._client()
        for key, value in tags.items():
            client.set_tag(run_id, key, value)

    @guarded
    def terminate(self, run_id, status):
        self._client().set_terminated(run_id, status=status)

    @guarded
    def log_metrics(self, metrics, step):
        clean = {_metric_key(k): float(v) for k, v in metrics.items()}
        self._mlflow.log_metrics(clean, step=step)

    @guarded
    def log_artifact(self, path, artifact_path=None):
        self._mlflow.log_artifact(str(path), artifact_path=artifact_path)

    @guarded
    def set_tags(self, tags):
        self._mlflow.set_tags(dict(tags))

    @guarded
    def log_dataset(self, record):
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset

        with warnings.catch_warnings():  # two registered local sources match; both are fine
            warnings.simplefilter("ignore", UserWarning)
            source = resolve_dataset_source(Path(record.source).resolve().as_uri())
        dataset = MetaDataset(source, name=record.name, digest=record.digest)
        tags = {f"{split}_size": str(n) for split, n in record.splits.items()}
        self._mlflow.log_input(dataset, context="training", tags=tags)

    @guarded
    def log_model(self, model, name, example, normalisation=None):
        """mlflow.pytorch model + weights that load safely (sakd.tracking_models)."""
        from sakd.tracking_models import log_pytorch_model

        return log_pytorch_model(model, name, example, normalisation)


def _metric_key(key: str) -> str:
    """MLflow allows letters, digits, _ - . / and spaces in keys."""
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in key)


def _quoted(value: str) -> str:
    """A value inside single quotes of an MLflow search filter."""
    return value.replace("\\", "\\\\").replace("'", "\\'")
