"""The patient message settings (services/common/settings.py): defaults, secrets from files,
and a bad value refused at load with the variable's name."""
from __future__ import annotations

import pytest

from services.common.settings import load


def test_defaults_send_nothing_and_speak_utc(tmp_path):
    settings = load("intake", env={"CLINIC_STATE_DIR": str(tmp_path)})
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_starttls, settings.sms_gateway_url) == (
        None, 25, False, None)
    assert (settings.clinic_time_zone, settings.clinic_name, settings.message_max_attempts) == ("UTC", None, 5)


def test_secrets_come_from_files_too(tmp_path):
    (tmp_path / "pw").write_text("smtp-secret\n")
    (tmp_path / "token").write_text("gw-token\n")
    settings = load("intake", env={
        "CLINIC_STATE_DIR": str(tmp_path), "CLINIC_SMTP_HOST": "mail", "CLINIC_SMTP_FROM": "a@clinic.example",
        "CLINIC_SMTP_PASSWORD_FILE": str(tmp_path / "pw"), "CLINIC_SMS_GATEWAY_URL": "https://sms.example/v1",
        "CLINIC_SMS_GATEWAY_TOKEN_FILE": str(tmp_path / "token"), "CLINIC_SMTP_STARTTLS": "yes",
        "CLINIC_TIME_ZONE": "Europe/Lisbon", "CLINIC_SMTP_PORT": "587"})
    assert (settings.smtp_password, settings.sms_gateway_token, settings.smtp_starttls, settings.smtp_port) == (
        "smtp-secret", "gw-token", True, 587)


@pytest.mark.parametrize("env, named", [
    ({"CLINIC_TIME_ZONE": "Mars/Olympus"}, "CLINIC_TIME_ZONE"),
    ({"CLINIC_SMTP_HOST": "mail"}, "CLINIC_SMTP_FROM"),
    ({"CLINIC_SMTP_FROM": "nobody"}, "CLINIC_SMTP_FROM"),
    ({"CLINIC_SMTP_PORT": "70000"}, "CLINIC_SMTP_PORT"),
    ({"CLINIC_SMTP_STARTTLS": "true"}, "CLINIC_SMTP_STARTTLS"),
    ({"CLINIC_SMS_GATEWAY_URL": "sms.example"}, "CLINIC_SMS_GATEWAY_URL"),
    ({"CLINIC_MESSAGE_MAX_ATTEMPTS": "0"}, "CLINIC_MESSAGE_MAX_ATTEMPTS"),
])
def test_a_bad_value_is_refused_naming_the_variable(tmp_path, env, named):
    with pytest.raises(ValueError, match=named):
        load("intake", env={"CLINIC_STATE_DIR": str(tmp_path), **env})
