"""The FHIR R4 interface's routes under /fhir/R4 (a plain Flask blueprint: FHIR's answers are
its own resources, not the OpenAPI-described JSON of /v1).

Staff only (scheduler or admin, Bearer token), checked as the JSON API checks it
(services/common/auth.require_staff), and audited as it audits: a read of a referral's
resources (ServiceRequest, Appointment, Patient, _history) is one `read` row, a search one
`list` row naming every referral on the page (services/common/audit.py). Slots, schedules
and providers carry no patient data: not audited, as /v1/slots. The CapabilityStatement
(metadata) is public, as /openapi.json is.
"""
from __future__ import annotations

import json
import uuid

from flask import Blueprint, Flask, Response, request

from services.common import audit
from services.common.auth import require_staff
from services.common.errors import ApiError

from .. import cursor
from ..api.common import pool
from . import bundles, provider_resources, referral_resources, store
from .capability import capability_statement
from .errors import OperationOutcomeErrors
from .ids import MEDIA_TYPE
from .records import ReferralRecord
from .search import FORMAT, JSON_FORMATS, Search, SearchError, parse_search, prefers_lenient

PREFIX = "/fhir/R4"
bp = Blueprint("fhir", __name__, url_prefix=PREFIX)

# Accept values this server satisfies; their parameters (fhirVersion=4.0, charset) are not compared.
ACCEPTED = ("application/fhir+json", "application/json", "application/json+fhir", "application/*", "*/*")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.wsgi_app = OperationOutcomeErrors(app.wsgi_app)


# -- the request's edges ------------------------------------------------------------------
def _base() -> str:
    return request.url_root.rstrip("/") + PREFIX


def _lenient() -> bool:
    return prefers_lenient(request.headers.get("Prefer"))


def _negotiate() -> None:
    """406 unless the client takes JSON (Accept, or _format, which FHIR lets override it)."""
    formats = request.args.getlist(FORMAT)
    if formats and any(f not in JSON_FORMATS for f in formats):
        raise ApiError(406, "not_acceptable", "This server answers JSON only (_format=json).")
    accept = request.accept_mimetypes
    if not formats and accept and not any(quality > 0 and value.split(";")[0].strip().lower() in ACCEPTED
                                          for value, quality in accept):
        raise ApiError(406, "not_acceptable", f"This server answers {MEDIA_TYPE} only (Accept).")


def _search_error(exc: SearchError) -> ApiError:
    code = "not_supported" if exc.code == "not-supported" else "invalid_search"
    return ApiError(400, code, exc.message, [{"field": exc.parameter, "message": exc.message}])


def _read_args() -> None:
    """A read takes no parameter but _format; others are refused, unless lenient."""
    unknown = [name for name in request.args if name != FORMAT]
    if unknown and not _lenient():
        raise _search_error(SearchError(unknown[0], f"Unknown parameter '{unknown[0]}' on a read.",
                                        code="not-supported"))


def _search(resource_type: str) -> Search:
    _negotiate()
    try:
        return parse_search(resource_type, request.args.items(multi=True), lenient=_lenient())
    except SearchError as exc:
        raise _search_error(exc) from None


def _after(search: Search, order: str) -> tuple | None:
    if search.cursor is None:
        return None
    try:
        return cursor.decode(search.cursor, _cursor_kind(search, order), store.KEY_TYPES[order])
    except cursor.InvalidCursor:
        raise _search_error(SearchError("_cursor", "_cursor: not from this search's next link; start again "
                                                   "without it.")) from None


def _cursor_kind(search: Search, order: str) -> str:
    return f"fhir-{search.resource_type}-{order}"


def _answer(resource: dict, status: int = 200) -> Response:
    response = Response(json.dumps(resource, separators=(",", ":")), status=status, mimetype=MEDIA_TYPE)
    if version := resource.get("meta", {}).get("versionId"):
        response.headers["ETag"] = f'W/"{version}"'
    return response


def _page(search: Search, resources: list[dict], next_key: tuple | None, order: str) -> Response:
    next_cursor = cursor.encode(_cursor_kind(search, order), *next_key) if next_key else None
    return _answer(bundles.searchset(_base(), search.resource_type, resources, params=search.applied,
                                     next_cursor=next_cursor, first_page=search.cursor is None))


def _id(value: str, resource_type: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise _not_found(resource_type) from None


def _not_found(resource_type: str) -> ApiError:
    return ApiError(404, "not_found", f"No such {resource_type}.")


def _read(resource_type: str, value: str) -> str:
    _negotiate()
    _read_args()
    return _id(value, resource_type)


# -- metadata -------------------------------------------------------------------------------
@bp.get("/metadata")
def metadata():
    _negotiate()
    return _answer(capability_statement(_base()))


# -- referrals: ServiceRequest, Appointment, Patient -------------------------------------------
def _referral_or_404(conn, referral_id: str, resource_type: str) -> ReferralRecord:
    found = store.referral(conn, referral_id)
    if found is None:
        raise _not_found(resource_type)
    return found


@bp.get("/ServiceRequest/<referral_id>")
@require_staff()
def read_service_request(referral_id):
    referral_id = _read("ServiceRequest", referral_id)
    with pool().connection() as conn:
        found = _referral_or_404(conn, referral_id, "ServiceRequest")
        reports, history = store.links_and_history(conn, [referral_id])
        audit.record(conn, audit.READ, "referral", [referral_id], [found.patient_mrn])
    return _answer(referral_resources.service_request(found, reports[referral_id], history[referral_id]))


@bp.get("/ServiceRequest/<referral_id>/_history")
@require_staff()
def service_request_history(referral_id):
    referral_id = _read("ServiceRequest", referral_id)
    with pool().connection() as conn:
        found = _referral_or_404(conn, referral_id, "ServiceRequest")
        reports, history = store.links_and_history(conn, [referral_id])
        audit.record(conn, audit.READ, "referral", [referral_id], [found.patient_mrn])
    versions = referral_resources.service_request_versions(found, reports[referral_id], history[referral_id])
    return _answer(bundles.history(_base(), versions, self_url=f"{_base()}/ServiceRequest/{referral_id}/_history"))


@bp.get("/ServiceRequest")
@require_staff()
def search_service_requests():
    search = _search("ServiceRequest")
    order = store.service_request_order(search)
    after = _after(search, order)
    with pool().connection() as conn:
        found, next_key = ([], None) if search.matches_nothing else store.service_requests(conn, search, after)
        ids = [r.referral_id for r in found]
        reports, history = store.links_and_history(conn, ids) if ids else ({}, {})
        audit.record(conn, audit.LIST, "referral", ids, [r.patient_mrn for r in found])
    resources = [referral_resources.service_request(r, reports.get(r.referral_id, []),
                                                    history.get(r.referral_id, [])) for r in found]
    return _page(search, resources, next_key, order)


@bp.get("/Appointment/<referral_id>")
@require_staff()
def read_appointment(referral_id):
    referral_id = _read("Appointment", referral_id)
    with pool().connection() as conn:
        found = store.booking(conn, referral_id)
        if found is None:
            raise _not_found("Appointment")
        audit.record(conn, audit.READ, "referral", [referral_id], [found.referral.patient_mrn])
    return _answer(referral_resources.appointment(found))


@bp.get("/Appointment")
@require_staff()
def search_appointments():
    search = _search("Appointment")
    after = _after(search, store.START_ORDER)
    with pool().connection() as conn:
        found, next_key = ([], None) if search.matches_nothing else store.appointments(conn, search, after)
        audit.record(conn, audit.LIST, "referral", [b.referral.referral_id for b in found],
                     [b.referral.patient_mrn for b in found])
    return _page(search, [referral_resources.appointment(b) for b in found], next_key, store.START_ORDER)


@bp.get("/Patient/<referral_id>")
@require_staff()
def read_patient(referral_id):
    referral_id = _read("Patient", referral_id)
    with pool().connection() as conn:
        found = _referral_or_404(conn, referral_id, "Patient")
        audit.record(conn, audit.READ, "referral", [referral_id], [found.patient_mrn])
    return _answer(referral_resources.patient(found))


# -- providers and slots -------------------------------------------------------------------------
def _provider_resource(resource_type: str, provider_id: str, build) -> Response:
    provider_id = _read(resource_type, provider_id)
    with pool().connection() as conn:
        found = store.provider(conn, provider_id)
    if found is None:
        raise _not_found(resource_type)
    return _answer(build(found))


@bp.get("/HealthcareService/<provider_id>")
@require_staff()
def read_healthcare_service(provider_id):
    return _provider_resource("HealthcareService", provider_id, provider_resources.healthcare_service)


@bp.get("/Location/<provider_id>")
@require_staff()
def read_location(provider_id):
    return _provider_resource("Location", provider_id, provider_resources.location)


@bp.get("/Schedule/<provider_id>")
@require_staff()
def read_schedule(provider_id):
    return _provider_resource("Schedule", provider_id, provider_resources.schedule)


@bp.get("/Slot/<slot_id>")
@require_staff()
def read_slot(slot_id):
    slot_id = _read("Slot", slot_id)
    with pool().connection() as conn:
        found = store.slot(conn, slot_id)
    if found is None:
        raise _not_found("Slot")
    return _answer(provider_resources.slot(found))


@bp.get("/Slot")
@require_staff()
def search_slots():
    search = _search("Slot")
    after = _after(search, store.START_ORDER)
    with pool().connection() as conn:
        found, next_key = ([], None) if search.matches_nothing else store.slots(conn, search, after)
    return _page(search, [provider_resources.slot(s) for s in found], next_key, store.START_ORDER)
