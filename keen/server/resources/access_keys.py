"""Access keys: ``/keys``, ``/keys/<key>``, ``/keys/<key>/revoke`` and ``/unrevoke``.

Choice where keen-api.md leaves room [INF]: revoke/unrevoke answer 200 with the updated key
object. (keen-api.md 15.1 cites test mocks with an empty 204, but keen 0.7.0 parses a JSON body
from these calls: a body keeps that client working, and clients expecting 204 accept a 200 with
JSON as well.) A key whose filters are malformed is refused when it is defined, not on every
query made with it.
"""

from __future__ import annotations

import secrets
from typing import Any

from keen.server._errors import bad_request
from keen.server.auth import ACCESS_KEY_KIND, ACCESS_KEY_PERMISSIONS, ADMIN
from keen.server.filters import normalize_filters
from keen.server.resources._base import Call, Response, Route, check_fields, json_response

_FIELDS = {"name", "is_active", "permitted", "options"}
# Expected JSON types of option entries in any section ("allowed": an object for datasets, a
# list elsewhere).
_OPTION_TYPES: dict[str, type] = {"autofill": dict, "filters": list, "blocked": list,
                                  "operations": list}
_OPTIONS = ("writes", "queries", "saved_queries", "cached_queries", "datasets")


def _doc(call: Call, key: str) -> dict[str, Any]:
    call.principal.require(ADMIN)
    return call.stored_doc(ACCESS_KEY_KIND, key)


def list_access_keys(call: Call) -> Response:
    call.principal.require(ADMIN)
    return json_response(200, call.storage.list_docs(call.project_id, ACCESS_KEY_KIND))


def create_access_key(call: Call) -> Response:
    call.principal.require(ADMIN)
    definition = _definition(call.json_body())
    key = secrets.token_hex(32).upper()
    doc = {"key": key, "project_id": call.project_id, **definition}
    call.storage.put_doc(call.project_id, ACCESS_KEY_KIND, key, doc)
    return json_response(201, doc)


def get_access_key(call: Call, key: str) -> Response:
    return json_response(200, _doc(call, key))


def update_access_key(call: Call, key: str) -> Response:
    doc = _doc(call, key)
    doc.update(_definition(call.json_body()))
    call.storage.put_doc(call.project_id, ACCESS_KEY_KIND, key, doc)
    return json_response(200, doc)


def _set_active(call: Call, key: str, active: bool) -> Response:
    doc = _doc(call, key)
    doc["is_active"] = active
    call.storage.put_doc(call.project_id, ACCESS_KEY_KIND, key, doc)
    return json_response(200, doc)


def revoke_access_key(call: Call, key: str) -> Response:
    return _set_active(call, key, False)


def unrevoke_access_key(call: Call, key: str) -> Response:
    return _set_active(call, key, True)


def delete_access_key(call: Call, key: str) -> Response:
    _doc(call, key)
    call.storage.delete_doc(call.project_id, ACCESS_KEY_KIND, key)
    return Response(204)


def _definition(body: Any) -> dict[str, Any]:
    what = "AccessKey"
    fields = check_fields(body, what, _FIELDS, ignored={"key", "project_id"})
    name = fields.get("name")
    if name is not None and not isinstance(name, str):
        raise bad_request(f"Invalid{what}Error", "name must be a string.")
    active = fields.get("is_active", True)
    if not isinstance(active, bool):
        raise bad_request(f"Invalid{what}Error", "is_active must be true or false.")
    permitted = fields.get("permitted", [])
    if (not isinstance(permitted, list)
            or not all(p in ACCESS_KEY_PERMISSIONS for p in permitted)):
        raise bad_request(f"Invalid{what}Error", "permitted must be a list of: "
                          f"{', '.join(ACCESS_KEY_PERMISSIONS)}.")
    options = fields.get("options") or {}
    if not isinstance(options, dict):
        raise bad_request(f"Invalid{what}Error", "options must be a JSON object.")
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise bad_request(f"Invalid{what}Error", f"Unknown option(s): {', '.join(unknown)}.")
    for section, value in options.items():
        if value is not None and not isinstance(value, dict):
            raise bad_request(f"Invalid{what}Error", f"options.{section} must be an object.")
        types = dict(_OPTION_TYPES, allowed=dict if section == "datasets" else list)
        for option, kind in types.items():
            if value and value.get(option) is not None and not isinstance(value[option], kind):
                expected = "a list" if kind is list else "an object"
                raise bad_request(f"Invalid{what}Error",
                                  f"options.{section}.{option} must be {expected}.")
        if value and value.get("filters"):
            normalize_filters(value["filters"])
    return {"name": name, "is_active": active, "permitted": list(dict.fromkeys(permitted)),
            "options": {section: options.get(section) for section in _OPTIONS}}


ROUTES: list[Route] = [
    (("keys",), {"GET": list_access_keys, "POST": create_access_key}),
    (("keys", "*"), {"GET": get_access_key, "POST": update_access_key,
                     "DELETE": delete_access_key}),
    (("keys", "*", "revoke"), {"POST": revoke_access_key}),
    (("keys", "*", "unrevoke"), {"POST": unrevoke_access_key}),
]
