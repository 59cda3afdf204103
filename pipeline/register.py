"""`register` stage: the best student of each pair (by validation top-1, never test) becomes a
version of the MLflow registered model `sakd-<dataset>-<teacher>-<student>` with alias `champion`,
once its model loads from the store (a candidate whose artifacts are gone moves no alias).

Idempotent: a run already registered under the name is reused, so re-running adds no version.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.errors import UserError
from pipeline.outputs import write_json
from pipeline.paths import Layout, run_key
from pipeline.saved_models import load_from_mlflow
from sakd.config import Params
from sakd.tracking import MODEL_NAME
from sakd.tracking_errors import store_errors
from sakd.train.checkpoint import load_checkpoint

ALIAS = "champion"


@dataclass(frozen=True)
class Candidate:
    key: str
    distiller: str
    strategy: str
    seed: int
    val_top1: float  # last epoch, as logged under val/top1
    test_top1: float  # last epoch; reported, never used to choose
    run_id: str


def registered_name(dataset: str, teacher: str, student: str) -> str:
    return f"sakd-{dataset}-{teacher}-{student}"


def champion(candidates: list[Candidate]) -> Candidate:
    """Highest last-epoch val/top1; ties go to the first in params order (deterministic)."""
    return max(reversed(candidates), key=lambda c: c.val_top1)


def pair_candidates(params: Params, layout: Layout, test: dict, teacher: str,
                    student: str) -> list[Candidate]:
    out = []
    runs = params.runs
    for distiller in runs.distillers:
        for strategy in runs.strategies:
            for seed in runs.seeds:
                key = run_key(teacher, student, distiller, strategy, seed)
                if key not in test:
                    raise UserError(f"{layout.evaluate_metrics()} has no {key}: rerun "
                                    f"`dvc repro evaluate`")
                state = load_checkpoint(layout.student(key), required=("history", "run_id"))
                out.append(Candidate(key, distiller, strategy, seed,
                                     float(state["history"][-1]["val/top1"]),
                                     float(test[key]["top1"]), str(state["run_id"])))
    return out


def register_version(client, name: str, best: Candidate) -> str:
    """The version of `name` that holds best's run (created once), with its tags and alias."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description="best distilled student by val top-1")
    existing = [v for v in client.search_model_versions(f"name='{name}'")
                if v.run_id == best.run_id]
    if existing:
        version = str(min(int(v.version) for v in existing))
    else:
        model_id = _logged_model_id(client, best)
        version = client.create_model_version(name, f"models:/{model_id}", run_id=best.run_id,
                                              model_id=model_id).version
    tags = {"distiller": best.distiller, "strategy": best.strategy, "seed": str(best.seed),
            "test_top1": f"{best.test_top1:.2f}", "val_top1": f"{best.val_top1:.2f}",
            "run_key": best.key}
    for k, v in tags.items():
        client.set_model_version_tag(name, version, k, v)
    client.set_registered_model_alias(name, ALIAS, version)
    return str(version)


def _logged_model_id(client, best: Candidate) -> str:
    """MLflow 3 keeps models as LoggedModel entities: the id of the run's `model` output."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(best.run_id)
        for out in run.outputs.model_outputs if run.outputs else []:
            if client.get_logged_model(out.model_id).name == MODEL_NAME:
                return out.model_id
    except MlflowException as err:
        raise UserError(f"MLflow run {best.run_id} of {best.key} is not in this tracking store "
                        f"({err}); rerun `dvc repro distill`") from None
    raise UserError(f"MLflow run {best.run_id} of {best.key} logged no model {MODEL_NAME!r} "
                    f"(trained before models were logged?): rerun `dvc repro distill -f`")


def check_loadable(name: str, best: Candidate, tracking_uri: str) -> None:
    """The candidate's model must load (from its plain weights, as `sakd export` loads it)
    before the alias moves to it; otherwise the alias stays where it was."""
    try:
        load_from_mlflow(f"runs:/{best.run_id}/{MODEL_NAME}", tracking_uri)
    except UserError as err:
        raise UserError(f"{name}: alias {ALIAS!r} not moved to {best.key} (run {best.run_id}), "
                        f"whose model does not load: {err}") from None


def run_register(params: Params, root: Path, tracking_uri: str) -> Path:
    """Register each pair's champion once every champion's model loads; writes
    metrics/registry/<dataset>.json (what was chosen)."""
    from mlflow import MlflowClient

    dataset = params.data.dataset
    layout = Layout(root, dataset)
    evaluated = layout.evaluate_metrics()
    if not evaluated.is_file():
        raise UserError(f"{evaluated} is missing: run `dvc repro evaluate` first")
    test = json.loads(evaluated.read_text(encoding="utf-8"))["students"]
    chosen = {}
    for pair in params.runs.pairs:
        best = champion(pair_candidates(params, layout, test, pair.teacher, pair.student))
        name = registered_name(dataset, pair.teacher, pair.student)
        check_loadable(name, best, tracking_uri)
        chosen[name] = best
    client = MlflowClient(tracking_uri)
    summary = {}
    with store_errors(tracking_uri):
        for name, best in chosen.items():
            version = register_version(client, name, best)
            summary[name] = {"version": int(version), "alias": ALIAS, **asdict(best)}
    out = root / "metrics" / "registry" / f"{dataset}.json"
    write_json(out, summary)
    return out
