"""The registry champion: best by validation among every student of a pair, the student trained
alone included, tagged with whether distillation beat it (issue: a plain-KD champion sat below
the student trained alone)."""

from __future__ import annotations

from pipeline.register import Candidate, champion, versus_alone


def cand(strategy: str, val: float, seed: int = 0, distiller: str = "kd") -> Candidate:
    key = f"t-s/{distiller}-{strategy}/seed{seed}"
    return Candidate(key, distiller, strategy, seed, val, test_top1=val - 1.0, run_id=key)


def test_student_alone_wins_when_it_is_best_on_validation():
    alone = cand("never", 98.0)
    pool = [cand("adaptive", 97.5), cand("always", 97.78), alone, cand("always", 97.9, seed=1)]
    best = champion(pool)
    assert best is alone
    tags = versus_alone(pool, best)
    assert tags["beats_student_alone"] == "false"
    assert tags["student_alone_val_top1"] == "98.00"


def test_distilled_champion_is_tagged_as_beating_the_best_student_alone():
    pool = [cand("never", 80.0), cand("never", 81.5, seed=1), cand("at", 83.0, distiller="at"),
            cand("adaptive", 82.0)]
    best = champion(pool)
    assert best.strategy == "at" and best.val_top1 == 83.0
    tags = versus_alone(pool, best)
    assert tags == {"beats_student_alone": "true", "student_alone_val_top1": "81.50",
                    "student_alone_run_key": "t-s/kd-never/seed1"}


def test_a_tie_goes_to_the_student_alone_then_to_params_order():
    pool = [cand("adaptive", 90.0), cand("never", 90.0)]
    best = champion(pool)
    assert best.strategy == "never"
    assert versus_alone(pool, best)["beats_student_alone"] == "false"
    first, second = cand("adaptive", 91.0), cand("always", 91.0)
    assert champion([first, second, *pool]) is first


def test_without_a_student_alone_the_verdict_says_so():
    pool = [cand("adaptive", 90.0), cand("always", 91.0)]
    assert versus_alone(pool, champion(pool))["beats_student_alone"].startswith("unknown")
