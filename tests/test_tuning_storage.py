"""Storage URLs: where the study lives, overrides, redaction, and unreachable storages."""

from __future__ import annotations

import pytest

from sakd.tuning import TuningError
from sakd.tuning.storage import (
    ENV_VAR,
    check_storage_url,
    open_storage,
    redact,
    resolve_storage_url,
    storage_file,
)


def test_relative_files_live_at_the_project_root(tmp_path):
    assert resolve_storage_url("sqlite:///optuna.db", tmp_path, env={}) == \
        f"sqlite:///{tmp_path.resolve() / 'optuna.db'}"
    assert resolve_storage_url("journal:studies/o.journal", tmp_path, env={}) == \
        f"journal:{tmp_path.resolve() / 'studies' / 'o.journal'}"
    absolute = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    assert resolve_storage_url(absolute, tmp_path, env={}) == absolute
    assert storage_file(absolute) == tmp_path / "elsewhere.db"


def test_cli_beats_environment_beats_params(tmp_path):
    server = "postgresql://tuner:pw@db.example:5432/optuna"
    env = {ENV_VAR: server}
    assert resolve_storage_url("sqlite:///optuna.db", tmp_path, env=env) == server
    cli = f"journal:{tmp_path / 'cli.journal'}"
    assert resolve_storage_url("sqlite:///optuna.db", tmp_path, override=cli, env=env) == cli
    with pytest.raises(TuningError, match="unknown storage"):
        resolve_storage_url("sqlite:///optuna.db", tmp_path, override="redis://x", env={})


def test_passwords_stay_out_of_params_and_logs():
    url = "postgresql+psycopg2://tuner:s3cret@db.example:5432/optuna"
    assert "SAKD_OPTUNA_STORAGE" in check_storage_url(url)
    assert check_storage_url("postgresql://tuner@db.example/optuna") is None
    assert redact(url) == "postgresql+psycopg2://tuner:***@db.example:5432/optuna"
    assert redact("sqlite:///optuna.db") == "sqlite:///optuna.db"


def test_a_missing_folder_is_a_clear_error(tmp_path):
    for url in (f"sqlite:///{tmp_path / 'nope' / 'o.db'}", f"journal:{tmp_path / 'nope' / 'j'}"):
        with pytest.raises(TuningError, match=r"folder .*nope does not exist"):
            open_storage(url)
    assert not (tmp_path / "nope").exists()


def test_an_unreachable_server_is_a_clear_error_without_the_password():
    # Port 9 on localhost: nothing listens (or the driver is missing): either way one line.
    with pytest.raises(TuningError, match="cannot open Optuna storage") as err:
        open_storage("postgresql://tuner:s3cret@127.0.0.1:9/optuna")
    assert "s3cret" not in str(err.value)
    assert "***" in str(err.value)


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path):
    bad = tmp_path / "optuna.db"
    bad.write_text("not sqlite")
    with pytest.raises(TuningError, match="cannot open Optuna storage"):
        open_storage(f"sqlite:///{bad}")
    assert bad.read_text() == "not sqlite"
