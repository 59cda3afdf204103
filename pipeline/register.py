"""`register` stage: the best student of each pair (by validation top-1, never test) becomes a
version of the MLflow registered model `sakd-<dataset>-<teacher>-<student>` with alias `champion`,
once its model loads from the store (a candidate whose artifacts are gone moves no alias).

Every student of the pair competes, the student trained alone included (`never` runs, and the
pretrained student when runs.pretrain has it), so a champion is never worse on validation than
training without a teacher; the version is tagged with whether distillation beat that.

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
ALONE = "never"  # the strategy of a student trained without its teacher


@dataclass(frozen=True)
class Candidate:
    key: str
    distiller: str
    strategy: str
    seed: int
    val_top1: float  # last epoch, as logged under val/top1
    test_top1: float  # last epoch; reported, never used to choose
    run_id: str

    @property
    def alone(self) -> bool:
        return self.strategy == ALONE


def registered_name(dataset: str, teacher: str, student: str) -> str:
    return f"sakd-{dataset}-{teacher}-{student}"


def champion(candidates: list[Candidate]) -> Candidate:
    """Highest last-epoch val/top1. A tie goes to the student trained alone (distillation has to
    beat it, not equal it), then to the first in params order (deterministic)."""
    order = {id(c): i for i, c in enumerate(candidates)}
    return max(candidates, key=lambda c: (c.val_top1, c.alone, -order[id(c)]))


def versus_alone(candidates: list[Candidate], best: Candidate) -> dict[str, str]:
    """Tags saying whether distillation beat the student trained alone (best by val of each)."""
    alone = [c for c in candidates if c.alone]
    if not alone:
        return {"beats_student_alone": "unknown (no student trained alone in this study)"}
    best_alone = champion(alone)
    beats = not best.alone and best.val_top1 > best_alone.val_top1
    return {"beats_student_alone": str(beats).lower(),
            "student_alone_val_top1": f"{best_alone.val_top1:.2f}",
            "student_alone_run_key": best_alone.key}


def pair_candidates(params: Params, layout: Layout, evaluated: dict, teacher: str,
                    student: str) -> list[Candidate]:
    """Every student of the pair: each distiller x strategy x seed, and the pretrained one."""
    test, teachers = evaluated["students"], evaluated["teachers"]
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
    if student in runs.pretrain:  # the pretrain stage's student alone competes too
        state = load_checkpoint(layout.pretrained(student), required=("history", "run_id"))
        out.append(Candidate(f"pretrain/{student}", "none", ALONE, params.pretrain.seed,
                             float(state["history"][-1]["val/top1"]),
                             float(teachers[student]["top1"]), str(state["run_id"])))
    return out


def register_version(client, name: str, best: Candidate, extra_tags: dict[str, str]) -> str:
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
            "run_key": best.key, **extra_tags}
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


def evaluated_results(layout: Layout) -> dict:
    """The evaluate stage's metrics/evaluate/<dataset>.json: the stages that rank its students
    (register, compression) cannot run before it, so its absence says which stage to run."""
    evaluated = layout.evaluate_metrics()
    if not evaluated.is_file():
        raise UserError(f"{evaluated} is missing: run `dvc repro evaluate` first")
    return json.loads(evaluated.read_text(encoding="utf-8"))


def run_register(params: Params, root: Path, tracking_uri: str) -> Path:
    """Register each pair's champion once every champion's model loads; writes
    metrics/registry/<dataset>.json (what was chosen)."""
    from mlflow import MlflowClient

    dataset = params.data.dataset
    layout = Layout(root, dataset)
    results = evaluated_results(layout)
    chosen = {}
    for pair in params.runs.pairs:
        candidates = pair_candidates(params, layout, results, pair.teacher, pair.student)
        best = champion(candidates)
        verdict = versus_alone(candidates, best)
        name = registered_name(dataset, pair.teacher, pair.student)
        check_loadable(name, best, tracking_uri)
        chosen[name] = (best, verdict)
    client = MlflowClient(tracking_uri)
    summary = {}
    with store_errors(tracking_uri):
        for name, (best, verdict) in chosen.items():
            version = register_version(client, name, best, verdict)
            summary[name] = {"version": int(version), "alias": ALIAS, **asdict(best), **verdict}
    out = root / "metrics" / "registry" / f"{dataset}.json"
    write_json(out, summary)
    return out
