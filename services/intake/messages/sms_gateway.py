"""SMS through one HTTP gateway (urllib.request), documented in docs/patient-messages.md:

    POST <CLINIC_SMS_GATEWAY_URL>
    Authorization: Bearer <CLINIC_SMS_GATEWAY_TOKEN>      (when a token is set)
    Idempotency-Key: <message_id>
    Content-Type: application/json
    {"to": "<phone as the patient typed it>", "text": "<GSM-7, at most 160 septets>",
     "reference": "<message_id>"}

Any 2xx is sent; 429 and 5xx are temporary (retried with backoff), any other answer final.
A connection that cannot be made (or breaks while the request is written) is temporary; one
lost while waiting for the answer is uncertain: the gateway may have sent it, and it is not
sent again even though the Idempotency-Key would let a careful gateway drop a repeat.
"""
from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request

from .outcome import FAILED, SENT, TEMPORARY, UNCERTAIN, Outcome

TIMEOUT_S = 15.0


class SmsGateway:
    def __init__(self, url: str, token: str | None, *, timeout: float = TIMEOUT_S):
        self.url = url
        self.token = token
        self.timeout = timeout

    def request(self, message_id: str, to: str, text: str) -> urllib.request.Request:
        headers = {"Content-Type": "application/json", "Idempotency-Key": message_id}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        body = json.dumps({"to": to, "text": text, "reference": message_id}).encode()
        return urllib.request.Request(self.url, data=body, headers=headers, method="POST")

    def send(self, message_id: str, to: str, text: str) -> Outcome:
        try:
            with urllib.request.urlopen(self.request(message_id, to, text), timeout=self.timeout) as response:
                response.read()
                status = response.status
        except urllib.error.HTTPError as exc:  # an answer, not a 2xx (urllib follows no POST redirect)
            exc.close()
            status = exc.code
        except urllib.error.URLError as exc:  # before the request was written whole
            return Outcome(TEMPORARY, f"cannot reach the SMS gateway: {type(exc.reason).__name__}")
        except (http.client.HTTPException, OSError) as exc:  # the answer was lost
            return Outcome(UNCERTAIN, f"no answer from the SMS gateway: {type(exc).__name__}")
        if 200 <= status < 300:
            return Outcome(SENT)
        kind = TEMPORARY if status == 429 or status >= 500 else FAILED
        return Outcome(kind, f"SMS gateway answered {status}")

    def close(self) -> None:
        """Nothing held between messages (one request each)."""
