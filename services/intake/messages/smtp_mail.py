"""Email by SMTP (smtplib): one connection reused for a batch of messages, STARTTLS and
login when configured.

Each message goes MAIL, RCPT, DATA step by step, so that what went wrong says whether the
server may have taken it: a refusal or a lost connection before DATA is temporary (or
final for 5xx), a lost connection once DATA has begun is uncertain (the server may have
queued it; the message is never sent again).
"""
from __future__ import annotations

import smtplib
import ssl
from email import policy
from email.message import EmailMessage
from email.utils import formatdate

from .outcome import SENT, TEMPORARY, UNCERTAIN, Outcome, by_smtp_code

TIMEOUT_S = 30.0


def message_id_header(message_id: str, sender: str) -> str:
    """The Message-ID of a patient message: its own id at the sending domain, so a copy seen
    twice (a server's log, a patient's inbox) is recognisably the same message."""
    return f"<{message_id}@{sender.rpartition('@')[2] or 'clinic.invalid'}>"


def build(message_id: str, sender: str, to: str, content: dict) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = content["subject"]
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = message_id_header(message_id, sender)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to us
    # Quoted-printable: SMTP lines stay under 1,000 octets (a whole HTML page is one line)
    # and any clinic, provider or place name outside ASCII arrives intact.
    message.set_content(content["text"], cte="quoted-printable")
    message.add_alternative(content["html"], subtype="html", cte="quoted-printable")
    return message


class SmtpMailer:
    """One SMTP session at a time; `close()` ends it (the sender calls it after each batch)."""

    def __init__(self, host: str, port: int, sender: str, *, username: str | None = None,
                 password: str | None = None, starttls: bool = False, timeout: float = TIMEOUT_S):
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password, self.starttls = username, password, starttls
        self.timeout = timeout
        self._smtp: smtplib.SMTP | None = None

    def _session(self) -> smtplib.SMTP:
        if self._smtp is None:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            try:
                smtp.ehlo()
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if self.username:
                    smtp.login(self.username, self.password or "")
            except BaseException:
                smtp.close()
                raise
            self._smtp = smtp
        return self._smtp

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()

    def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()

    def _reset(self, smtp: smtplib.SMTP) -> None:
        """After a refusal, so the session can carry the next message."""
        try:
            smtp.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def send(self, message_id: str, to: str, content: dict) -> Outcome:
        try:
            smtp = self._session()
        except smtplib.SMTPResponseException as exc:  # greeting, STARTTLS or login refused
            self._drop()
            return Outcome(TEMPORARY, f"SMTP {exc.smtp_code} before sending (connect, STARTTLS or login)")
        except (smtplib.SMTPException, OSError) as exc:  # refused, unreachable, timed out, TLS
            self._drop()
            return Outcome(TEMPORARY, f"cannot reach the SMTP server: {type(exc).__name__}")
        data = build(message_id, self.sender, to, content).as_bytes(policy=policy.SMTP)  # CRLF lines
        try:
            code, _reply = smtp.mail(self.sender)
            if code != 250:
                return self._refused(smtp, code, "MAIL")
            code, _reply = smtp.rcpt(to)
            if code not in (250, 251):
                return self._refused(smtp, code, "RCPT")
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            return Outcome(TEMPORARY, f"connection lost before DATA: {type(exc).__name__}")
        try:
            code, _reply = smtp.data(data)
        except smtplib.SMTPDataError as exc:  # DATA itself refused (no 354): nothing was taken
            return self._refused(smtp, exc.smtp_code, "DATA")
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            return Outcome(UNCERTAIN, f"connection lost during DATA: {type(exc).__name__}")
        if code == 250:
            return Outcome(SENT)
        return self._refused(smtp, code, "end of DATA")

    def _refused(self, smtp: smtplib.SMTP, code: int, stage: str) -> Outcome:
        if code == 421:  # the server is closing the session
            self._drop()
        else:
            self._reset(smtp)
        return by_smtp_code(code, stage)

