import json
import pytest
from tests.intake_support import *  # noqa
from tests.intake_support import intake_settings, intake_app, client, kiosk, intake_conn  # noqa

pytestmark = pytest.mark.integration

def test_probe(client, kiosk):
    for data in [b"", b"null", b"[]", b'"x"', b"1", b"{", b"\xff\xfe", b'{"a":NaN}']:
        r = client.post("/v1/reports", data=data, headers={**kiosk.headers, "Content-Type": "application/json"})
        print(repr(data), r.status_code, r.get_json())
    r = client.post("/v1/reports", data=b"{}", headers={**kiosk.headers, "Content-Type": "application/merge-patch+json"})
    print("merge", r.status_code, r.get_json())
    r = client.post("/v1/reports", data=b"{}", headers={**kiosk.headers, "Content-Type": "application/json; charset=latin-1"})
    print("latin", r.status_code, r.get_json())
    r = client.post("/v1/reports", data=b"x"*70000, headers={**kiosk.headers, "Content-Type": "application/json"})
    print("big", r.status_code, r.get_json())
    r = client.post("/v1/reports", json=report_body(extra=1, patient__nick="x"), headers=kiosk.headers)
    print("unknown", r.status_code, r.get_json())
    r = client.post("/v1/nope", json={}, headers=kiosk.headers)
    print("404", r.status_code, r.get_json())
    r = client.delete("/v1/reports", headers=kiosk.headers)
    print("405", r.status_code, r.get_json())

def test_spec(client):
    spec = client.get("/openapi.json").get_json()
    print(json.dumps(spec["paths"]["/v1/reports"]["post"]["responses"], indent=1)[:3000])
    print(json.dumps(spec["paths"]["/v1/reports"]["post"].get("parameters"), indent=1))
    print(json.dumps(spec["components"]["schemas"]["Error"], indent=1))
    print(spec["info"])
