"""Where a process's Kafka credentials come from (services/common/settings.py) and the one
helper that turns them into kafka-python settings (services/common/kafka_io.client_security)."""
from __future__ import annotations

from services.common import settings
from services.common.kafka_io import client_security


def test_no_password_anywhere_is_plaintext(tmp_path):
    conf = settings.load("triage", env={"CLINIC_STATE_DIR": str(tmp_path)})
    assert conf.kafka_username == "triage"
    assert client_security(conf) == {}
    assert client_security(conf, "clinic-admin") == {}


def test_a_service_is_its_own_principal_with_its_password_from_the_state_folder(tmp_path):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "CLINIC_KAFKA_TRIAGE_PASSWORD").write_text("t-secret\n")
    (tmp_path / "secrets" / "CLINIC_KAFKA_CLINIC_ADMIN_PASSWORD").write_text("a-secret\n")
    conf = settings.load("triage", env={"CLINIC_STATE_DIR": str(tmp_path)})
    assert client_security(conf) == {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
                                     "sasl_plain_username": "triage", "sasl_plain_password": "t-secret"}
    assert client_security(conf, "clinic-admin")["sasl_plain_password"] == "a-secret"
    assert client_security(conf, "referral") == {}  # not found: no credentials for it


def test_the_clinic_command_is_clinic_admin(tmp_path):
    conf = settings.load("", env={"CLINIC_STATE_DIR": str(tmp_path), "CLINIC_KAFKA_CLINIC_ADMIN_PASSWORD": "a"})
    assert (conf.kafka_username, conf.kafka_password) == ("clinic-admin", "a")


def test_per_process_username_and_password_file_win(tmp_path):
    secret = tmp_path / "kafka-password"
    secret.write_text("from-file\n")
    conf = settings.load("referral", env={"CLINIC_STATE_DIR": str(tmp_path), "CLINIC_KAFKA_USERNAME": "referral",
                                          "CLINIC_KAFKA_PASSWORD_FILE": str(secret),
                                          "CLINIC_KAFKA_REFERRAL_PASSWORD": "other"})
    assert client_security(conf)["sasl_plain_password"] == "from-file"


def test_retention_settings_default_to_7_and_14_days(tmp_path):
    conf = settings.load("", env={"CLINIC_STATE_DIR": str(tmp_path), "CLINIC_DLQ_RETENTION_DAYS": "30"})
    assert (conf.topic_retention_days, conf.dlq_retention_days) == (7.0, 30.0)
