"""A read-only HL7 FHIR R4 interface on the referral service (issue 17, docs/fhir.md).

records.py     the rows the mapping reads (plain values, no I/O)
ids.py         ids, references, code systems, instants
referral_resources.py / provider_resources.py / bundles.py / outcome.py / capability.py
               the pure mapping: rows -> FHIR resources (dicts)
search.py      the search parameters each resource supports, parsed (pure); the
               CapabilityStatement is built from the same declarations
store.py       the SQL (reads, index-backed keyset searches)
errors.py      every error answer under /fhir/ as an OperationOutcome (WSGI)
api.py         the Flask blueprint
"""
