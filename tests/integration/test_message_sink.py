"""The local message sink of `make run` (infra/message_sink.py), started as a process the way
the stack starts it, fed a real email (smtplib) and real SMS gateway requests (urllib); and
how the stack points the intake service at it (infra/stack.py)."""
from __future__ import annotations

import json
import signal
import smtplib
import subprocess
import urllib.error
import urllib.request
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest

from infra.local_secrets import ensure_local_secret
from infra.message_sink import LocalMessageSink, mail_dir, sms_file
from infra.stack import SMS_SINK_TOKEN, StackConfig, patient_message_env, summary
from services.common import settings as settings_module
from services.common.secret_sources import local_secrets_dir
from tests.live_stack import stack_ports

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
# No proxy: an http_proxy in the environment must not see requests to 127.0.0.1.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def sink_for(state_dir: Path) -> LocalMessageSink:
    ports = stack_ports()
    config = StackConfig.from_env({"CLINIC_STATE_DIR": str(state_dir), **ports})
    ensure_local_secret(state_dir, SMS_SINK_TOKEN)
    return config.message_sink()


def start(sink: LocalMessageSink, log_path: Path) -> subprocess.Popen:
    proc = sink.start(log_path, REPO)
    try:
        sink.wait_ready()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


@pytest.fixture
def sink(tmp_path):
    sink = sink_for(tmp_path)
    proc = start(sink, tmp_path / "message-sink.log")
    yield sink
    if proc.poll() is None:
        stop(proc)


def send_mail(sink: LocalMessageSink, subject: str, to: str = "patient@example.test") -> None:
    message = EmailMessage()
    message["From"] = "Hip Clinic <appointments@clinic.localhost>"
    message["To"] = to
    message["Subject"] = subject
    message.set_content("Your appointment is on Tuesday 1 December at 09:30 with Dr Osei.")
    # Longer than one SMTP line may be (1,000 octets): kept whole all the same.
    message.add_alternative("<p>Your appointment is on <b>Tuesday 1 December at 09:30</b>.</p>" * 30,
                            subtype="html")
    with smtplib.SMTP(sink.host, sink.smtp_port, timeout=10) as smtp:
        smtp.send_message(message, to_addrs=[to, "bcc@example.test"])


def post_sms(sink: LocalMessageSink, body: object, token: str | None = None,
             idempotency_key: str | None = "key-1") -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    request = urllib.request.Request(sink.sms_url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with OPENER.open(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def token_of(sink: LocalMessageSink) -> str:
    return sink.token_file.read_text().strip()


def sms_lines(state_dir: Path) -> list[dict]:
    path = sms_file(state_dir)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


SMS = {"to": "+447700900123", "text": "Hip Clinic: you are booked for Tue 1 Dec 09:30.", "reference": "msg-1"}


# --- mail --------------------------------------------------------------------------------


def test_an_email_is_kept_whole_as_one_eml_file_and_logged(sink, tmp_path):
    send_mail(sink, "Your appointment – booked")

    [path] = mail_dir(tmp_path).glob("*.eml")
    kept = message_from_bytes(path.read_bytes(), policy=default_policy)
    assert kept["Subject"] == "Your appointment – booked"
    assert kept["To"] == "patient@example.test"
    assert kept["X-Sink-Envelope-To"] == "<patient@example.test>, <bcc@example.test>"
    assert "Tuesday 1 December at 09:30 with Dr Osei" in kept.get_body(("plain",)).get_content()
    assert kept.get_body(("html",)).get_content().count("<b>Tuesday 1 December at 09:30</b>") == 30
    log = (tmp_path / "message-sink.log").read_text()
    assert ("mail from=appointments@clinic.localhost to=patient@example.test,bcc@example.test "
            "subject='Your appointment – booked'") in log


def test_eml_names_sort_by_arrival_also_after_a_restart(tmp_path):
    sink = sink_for(tmp_path)
    proc = start(sink, tmp_path / "message-sink.log")
    for n in range(1, 12):  # past 9: the names must not sort as text would number them
        send_mail(sink, f"message {n}")
    assert stop(proc) == 0
    proc = start(sink, tmp_path / "message-sink.log")
    try:
        send_mail(sink, "message 12")
    finally:
        assert stop(proc) == 0

    subjects = [message_from_bytes(p.read_bytes(), policy=default_policy)["Subject"]
                for p in sorted(mail_dir(tmp_path).glob("*.eml"))]
    assert subjects == [f"message {n}" for n in range(1, 13)]


# --- SMS ---------------------------------------------------------------------------------


def test_an_sms_with_the_token_is_accepted_and_kept_as_one_json_line(sink, tmp_path):
    status, answer = post_sms(sink, SMS, token=token_of(sink), idempotency_key="key-1")

    assert status == 202
    [line] = sms_lines(tmp_path)
    assert {k: line[k] for k in ("to", "text", "reference", "idempotency_key")} == {**SMS, "idempotency_key": "key-1"}
    assert answer == {"id": line["id"], "status": "accepted"}
    assert "sms to=+447700900123 reference=msg-1" in (tmp_path / "message-sink.log").read_text()


@pytest.mark.parametrize("token", [None, "wrong-token", ""])
def test_an_sms_without_the_right_token_gets_401_and_is_not_kept(sink, tmp_path, token):
    status, answer = post_sms(sink, SMS, token=token)

    assert status == 401
    assert answer == {"error": "missing or wrong bearer token"}
    assert sms_lines(tmp_path) == []


def test_a_repeated_idempotency_key_is_accepted_once(sink, tmp_path):
    first = post_sms(sink, SMS, token=token_of(sink), idempotency_key="same")
    again = post_sms(sink, SMS, token=token_of(sink), idempotency_key="same")
    other = post_sms(sink, {**SMS, "reference": "msg-2"}, token=token_of(sink), idempotency_key="other")

    assert first[0] == again[0] == other[0] == 202
    assert again[1]["id"] == first[1]["id"]
    assert [line["reference"] for line in sms_lines(tmp_path)] == ["msg-1", "msg-2"]


@pytest.mark.parametrize(("body", "key"), [
    ({"to": "+447700900123", "text": "hello"}, "k"),  # no reference
    ({**SMS, "text": "  "}, "k"),
    (["not", "an", "object"], "k"),
    (SMS, None),  # no Idempotency-Key
])
def test_a_malformed_sms_request_gets_400_and_is_not_kept(sink, tmp_path, body, key):
    status, _ = post_sms(sink, body, token=token_of(sink), idempotency_key=key)

    assert status == 400
    assert sms_lines(tmp_path) == []


def test_sigterm_stops_the_sink_with_exit_code_0_and_frees_its_ports(tmp_path):
    sink = sink_for(tmp_path)
    proc = start(sink, tmp_path / "message-sink.log")

    assert stop(proc) == 0
    with pytest.raises(OSError):
        smtplib.SMTP(sink.host, sink.smtp_port, timeout=2)
    assert "SIGTERM received, stopping" in (tmp_path / "message-sink.log").read_text()


# --- the stack's wiring ------------------------------------------------------------------


def config_for(state_dir: Path) -> StackConfig:
    return StackConfig.from_env({"CLINIC_STATE_DIR": str(state_dir),
                                 "CLINIC_MAIL_SINK_PORT": "2525", "CLINIC_SMS_SINK_PORT": "18025"})


def test_the_intake_service_is_pointed_at_the_sink(tmp_path):
    config = config_for(tmp_path)
    token = ensure_local_secret(tmp_path, SMS_SINK_TOKEN)

    env = patient_message_env(config, {"CLINIC_STATE_DIR": str(tmp_path)})
    loaded = settings_module.load("intake", env=env)

    assert (loaded.smtp_host, loaded.smtp_port, loaded.smtp_starttls) == ("127.0.0.1", 2525, False)
    assert loaded.smtp_from == "Hip Clinic <appointments@clinic.localhost>"
    assert (loaded.smtp_username, loaded.smtp_password) == (None, None)
    assert loaded.sms_gateway_url == "http://127.0.0.1:18025/sms"
    assert loaded.sms_gateway_token == token
    assert "CLINIC_SMS_GATEWAY_TOKEN" not in env  # a file, as the Kafka passwords are
    assert urllib.request.proxy_bypass_environment("127.0.0.1", proxies={"no": env["no_proxy"]})
    assert (loaded.clinic_name, loaded.clinic_time_zone) == ("Hip Clinic", "Europe/London")
    assert loaded.clinic_contact_phone == "+44 20 7946 0000"


def test_settings_meant_for_another_server_do_not_reach_the_sink(tmp_path):
    config = config_for(tmp_path)
    token = ensure_local_secret(tmp_path, SMS_SINK_TOKEN)
    stray = {"CLINIC_STATE_DIR": str(tmp_path), "no_proxy": "intranet.example.test",
             "CLINIC_SMTP_PORT": "587", "CLINIC_SMTP_STARTTLS": "yes",
             "CLINIC_SMTP_USERNAME": "someone", "CLINIC_SMTP_PASSWORD": "theirs",
             "CLINIC_SMS_GATEWAY_TOKEN": "a token for another gateway",
             "CLINIC_SMTP_FROM": "Dev <dev@example.test>", "CLINIC_NAME": "Knee Clinic"}

    env = patient_message_env(config, stray)
    loaded = settings_module.load("intake", env=env)

    assert (loaded.smtp_port, loaded.smtp_starttls) == (2525, False)
    assert (loaded.smtp_username, loaded.smtp_password) == (None, None)
    assert loaded.sms_gateway_token == token
    assert env["no_proxy"] == "intranet.example.test,127.0.0.1"
    # What the messages say is the operator's to choose, sink or not.
    assert (loaded.smtp_from, loaded.clinic_name) == ("Dev <dev@example.test>", "Knee Clinic")


def test_an_operators_own_smtp_server_and_gateway_win_over_the_sink(tmp_path):
    config = config_for(tmp_path)
    ensure_local_secret(tmp_path, SMS_SINK_TOKEN)
    own = {"CLINIC_STATE_DIR": str(tmp_path), "CLINIC_SMTP_HOST": "smtp.example.test", "CLINIC_SMTP_PORT": "587",
           "CLINIC_SMTP_STARTTLS": "yes", "CLINIC_SMTP_USERNAME": "clinic", "CLINIC_SMTP_PASSWORD": "pw",
           "CLINIC_SMTP_FROM": "appointments@example.test",
           "CLINIC_SMS_GATEWAY_URL": "https://sms.example.test/v1/messages"}

    env = patient_message_env(config, own)
    loaded = settings_module.load("intake", env=env)

    assert {k: v for k, v in env.items() if k.startswith(("CLINIC_SMTP_", "CLINIC_SMS_"))} == \
        {k: v for k, v in own.items() if k.startswith(("CLINIC_SMTP_", "CLINIC_SMS_"))}
    assert (loaded.smtp_host, loaded.smtp_port, loaded.smtp_starttls) == ("smtp.example.test", 587, True)
    assert loaded.sms_gateway_url == "https://sms.example.test/v1/messages"
    # The sink's token is not the operator's: their gateway is never sent it.
    assert loaded.sms_gateway_token is None
    assert not (local_secrets_dir(tmp_path) / "CLINIC_SMS_GATEWAY_TOKEN").exists()


def test_the_summary_says_where_mail_and_sms_land(tmp_path):
    config = config_for(tmp_path)

    to_sink = summary(config, None, environ={})
    own = summary(config, None, environ={"CLINIC_SMTP_HOST": "smtp.example.test",
                                         "CLINIC_SMS_GATEWAY_URL": "https://sms.example.test/?key=secret"})

    assert f"patient email  {tmp_path}/mail/ (one .eml each; SMTP 127.0.0.1:2525)" in to_sink
    assert (f"patient SMS    {tmp_path}/sms/messages.jsonl (one JSON line each; http://127.0.0.1:18025/sms)"
            in to_sink)
    assert "patient email  your CLINIC_SMTP_HOST (smtp.example.test)" in own
    assert "patient SMS    your CLINIC_SMS_GATEWAY_URL" in own
    assert "secret" not in own
