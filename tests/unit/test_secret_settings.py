"""Secrets have no usable default: from the environment, a NAME_FILE, or the local state
folder's secrets/ (made by `make run`), else unset and refused where needed."""
from __future__ import annotations

import pytest

from services.common.secret_sources import MissingSecret
from services.common.settings import load


def test_no_secret_key_and_no_database_password_without_a_source(tmp_path):
    settings = load("referral", env={"CLINIC_STATE_DIR": str(tmp_path)})
    assert settings.secret_key is None
    with pytest.raises(MissingSecret, match="CLINIC_SECRET_KEY is not set"):
        settings.require_secret_key()
    # No password in the URL: the server refuses the login instead of accepting a guessable one.
    assert settings.database_url == "postgresql://referral@127.0.0.1:55432/clinic"
    assert settings.admin_database_url == "postgresql://clinic_admin@127.0.0.1:55432/clinic"


def test_secrets_from_the_environment_from_files_and_from_the_local_folder(tmp_path):
    (tmp_path / "key").write_text("from-a-file\n")
    local = tmp_path / "state" / "secrets"
    local.mkdir(parents=True)
    (local / "CLINIC_TRIAGE_SECRET_KEY").write_text("local-triage-key")
    (local / "CLINIC_ADMIN_DB_PASSWORD").write_text("adm:in/pw")
    env = {"CLINIC_STATE_DIR": str(tmp_path / "state"), "CLINIC_INTAKE_DB_PASSWORD": "in-env"}

    assert load("intake", env={**env, "CLINIC_SECRET_KEY_FILE": str(tmp_path / "key")}).secret_key == "from-a-file"
    assert load("intake", env={**env, "CLINIC_SECRET_KEY": "from-env"}).secret_key == "from-env"
    triage = load("triage", env=env)
    assert triage.secret_key == "local-triage-key"  # each service its own
    assert load("intake", env=env).secret_key is None
    assert triage.role_url("intake") == "postgresql://intake:in-env@127.0.0.1:55432/clinic"
    assert triage.admin_database_url == "postgresql://clinic_admin:adm%3Ain%2Fpw@127.0.0.1:55432/clinic"


def test_a_given_url_wins_over_the_password_settings(tmp_path):
    settings = load("intake", env={"CLINIC_STATE_DIR": str(tmp_path), "CLINIC_INTAKE_DB_PASSWORD": "x",
                                   "CLINIC_DATABASE_URL": "postgresql://intake:given@db:5432/clinic"})
    assert settings.database_url == "postgresql://intake:given@db:5432/clinic"
