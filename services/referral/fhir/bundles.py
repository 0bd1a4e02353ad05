"""Bundles: a search's page (searchset) and a resource's versions (history). Pure."""
from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlencode


def search_url(base: str, resource_type: str, params: Sequence[tuple[str, str]]) -> str:
    query = urlencode(list(params))
    return f"{base}/{resource_type}" + (f"?{query}" if query else "")


def searchset(base: str, resource_type: str, resources: Sequence[dict], *, params: Sequence[tuple[str, str]],
              next_cursor: str | None, first_page: bool) -> dict:
    """One page of a search. `total` only where it costs nothing: a first page with no next
    (every match is on it); counting a large search would cost more than the page itself.
    `params`: the parameters the search used (the self link), the next link adds the cursor."""
    bundle: dict = {"resourceType": "Bundle", "type": "searchset"}
    if first_page and next_cursor is None:
        bundle["total"] = len(resources)
    bundle["link"] = [{"relation": "self", "url": search_url(base, resource_type, params)}]
    if next_cursor is not None:
        bundle["link"].append({"relation": "next",
                               "url": search_url(base, resource_type, [*params, ("_cursor", next_cursor)])})
    bundle["entry"] = [{"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r,
                        "search": {"mode": "match"}} for r in resources]
    return bundle


def history(base: str, versions: Sequence[dict], *, self_url: str) -> dict:
    """A resource's versions, newest first, each with how it came to be (created, then
    updated) as FHIR's history bundles say it."""
    entries = []
    for resource in reversed(versions):
        version = resource["meta"]["versionId"]
        created = version == "1"
        path = f"{resource['resourceType']}/{resource['id']}"
        entries.append({
            "fullUrl": f"{base}/{path}",
            "resource": resource,
            "request": {"method": "POST" if created else "PUT", "url": resource["resourceType"] if created else path},
            "response": {"status": "201 Created" if created else "200 OK", "etag": f'W/"{version}"',
                         "lastModified": resource["meta"]["lastUpdated"]},
        })
    return {"resourceType": "Bundle", "type": "history", "total": len(entries),
            "link": [{"relation": "self", "url": self_url}], "entry": entries}
