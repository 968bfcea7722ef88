"""Who is calling, and what they may do (keen-api.md 2.1, 15.4 and 16).

``authenticate`` turns the key of a request into a ``Principal``; handlers then ask it
``require(permission)`` and, for saved queries and datasets, the finer checks. Permissions use
the access-key vocabulary (``writes``, ``queries``, ``saved_queries``, ``cached_queries``,
``datasets``, ``schema``) plus ``admin`` for master-only endpoints.

Choices where the API reference is silent [INF]:

* every refusal is 401: ``AdminOnlyEndpointError`` when a non-master key calls a master-only
  endpoint, ``InvalidApiKeyError`` for everything else (missing, unknown, revoked or undecryptable
  key, or a key of the wrong kind, e.g. a write key on a query);
* a scoped key must decrypt to exactly the format's options: ``allowed_operations`` (a list
  of distinct ``"read"`` / ``"write"``; absent = none) and ``filters`` (well-formed filters
  carrying only ``property_name``, ``operator`` and ``property_value``, or ``operator`` and
  ``operands`` for ``or``), no other option, no name twice; anything else is refused as an
  invalid key (the format has no MAC, so this is what stops bit-flipped forgeries);
* a scoped key with ``"read"`` may do what a read key does (queries, schema, saved-query results,
  datasets); its ``filters`` are AND-ed onto ad-hoc queries and saved-query results. Datasets
  cannot honour filters, so a scoped key *with* filters may not read datasets;
* access-key ``allowed`` lists/objects that are missing, ``null`` or empty restrict nothing;
  ``blocked`` always wins. ``datasets.operations`` (``list``, ``read`` = get a definition,
  ``retrieve`` = results) restricts only when present and non-empty.
"""

from __future__ import annotations

import binascii
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keen.server._errors import QueryError
from keen.server._http_errors import ADMIN_ONLY, ApiError, unauthorized
from keen.server.config import ProjectConfig
from keen.server.filters import normalize_filters
from keen.server.limits import check_filter_counts, check_json

if TYPE_CHECKING:
    from keen.server.engines.base import EventStore as Storage

ADMIN = "admin"
WRITES = "writes"
QUERIES = "queries"
SAVED_QUERIES = "saved_queries"
CACHED_QUERIES = "cached_queries"
DATASETS = "datasets"
SCHEMA = "schema"
ACCESS_KEY_PERMISSIONS = (WRITES, QUERIES, SAVED_QUERIES, CACHED_QUERIES, DATASETS, SCHEMA)
ACCESS_KEY_KIND = "access_key"

_READ_PERMISSIONS = frozenset({QUERIES, SAVED_QUERIES, CACHED_QUERIES, DATASETS, SCHEMA})
_WRITE_PERMISSIONS = frozenset({WRITES})
_ALL_PERMISSIONS = _READ_PERMISSIONS | _WRITE_PERMISSIONS | {ADMIN}
# hex(IV) (32 digits) + at least one AES block, whole blocks only.
_SCOPED_KEY = re.compile(r"^(?:[0-9a-fA-F]{32})+$")
_DESCRIPTIONS = {
    WRITES: "write events",
    QUERIES: "run queries",
    SAVED_QUERIES: "read saved query results",
    CACHED_QUERIES: "read cached query results",
    DATASETS: "use cached datasets",
    SCHEMA: "inspect collections",
}


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    kind: str  # "master", "read", "write", "access" or "scoped"
    permitted: frozenset[str]
    query_filters: list[dict[str, Any]] = field(default_factory=list)
    autofill: dict[str, Any] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)  # access-key option sections

    def require(self, permission: str) -> None:
        """Raise the API's 401 unless this key may use ``permission``."""
        if permission in self.permitted:
            return
        if permission == ADMIN:
            raise unauthorized("This endpoint requires the master key.", ADMIN_ONLY)
        raise unauthorized(
            f"The {self._kind_name()} you provided is not allowed to "
            f"{_DESCRIPTIONS.get(permission, permission)}."
        )

    def saved_query_filters(self, name: str, cached: bool) -> list[dict[str, Any]]:
        """Check the key may read the results of saved query ``name``; extra filters to apply."""
        sections = [SAVED_QUERIES, CACHED_QUERIES] if cached else [SAVED_QUERIES]
        usable = [s for s in sections if s in self.permitted]
        if not usable:
            self.require(SAVED_QUERIES)
        if self.kind != "access":
            return list(self.query_filters)
        for section in usable:
            options = self._section(section)
            if _name_allowed(options, name):
                filters = options.get("filters") if section == SAVED_QUERIES else None
                return list(filters or [])
        raise unauthorized(f"This access key is not allowed to read saved query {name!r}.")

    def dataset_index_restriction(
        self, name: str | None, operation: str,
    ) -> dict[str, list[Any]] | None:
        """Check a dataset ``operation`` (``list``/``read``/``retrieve``) on ``name``.

        Returns the allowed values per ``index_by`` property (access keys with a restriction on
        this dataset), else ``None``. ``name`` is ``None`` for listing.
        """
        self.require(DATASETS)
        if self.kind != "access":
            return None
        options = self._section(DATASETS)
        operations = options.get("operations")
        if operations and operation not in operations:
            raise unauthorized(f"This access key is not allowed the dataset operation "
                               f"{operation!r}.")
        if name is None:
            return None
        if not _name_allowed(options, name):
            raise unauthorized(f"This access key is not allowed to use dataset {name!r}.")
        allowed = options.get("allowed") or {}
        restriction = allowed.get(name) if isinstance(allowed, dict) else None
        index_by = restriction.get("index_by") if isinstance(restriction, dict) else None
        return dict(index_by) if isinstance(index_by, dict) else None

    def dataset_visible(self, name: str) -> bool:
        """Whether a dataset appears in this key's listing."""
        if self.kind != "access":
            return True
        return _name_allowed(self._section(DATASETS), name)

    def _section(self, section: str) -> Mapping[str, Any]:
        value = self.options.get(section)
        return value if isinstance(value, Mapping) else {}

    def _kind_name(self) -> str:
        return {"read": "read key", "write": "write key", "access": "access key",
                "scoped": "scoped key"}.get(self.kind, "key")


def _name_allowed(options: Mapping[str, Any], name: str) -> bool:
    blocked = options.get("blocked") or ()
    if name in blocked:
        return False
    allowed = options.get("allowed")
    return not allowed or name in allowed


def _same(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def authenticate(project: ProjectConfig, key: str | None, storage: Storage) -> Principal:
    """The principal behind ``key`` for ``project``; raises the API's 401 otherwise.

    Order: the project's master, read and write keys; access keys created through the API;
    scoped keys (decrypted with the master key, which imports pycryptodome only then).
    """
    if not key:
        raise unauthorized("An API key is required: send it in the Authorization header "
                           "or as the api_key query parameter.")
    if _same(project.master_key, key):
        return Principal("master", _ALL_PERMISSIONS)
    if project.read_key is not None and _same(project.read_key, key):
        return Principal("read", _READ_PERMISSIONS)
    if project.write_key is not None and _same(project.write_key, key):
        return Principal("write", _WRITE_PERMISSIONS)
    doc = storage.get_doc(project.project_id, ACCESS_KEY_KIND, key)
    if doc is not None:
        return _access_key_principal(doc)
    if _SCOPED_KEY.match(key) and len(key) >= 64:
        return _scoped_key_principal(project, key)
    raise unauthorized("The API key you provided is not valid for this project.")


def _access_key_principal(doc: Mapping[str, Any]) -> Principal:
    if not doc.get("is_active", True):
        raise unauthorized("The access key you provided has been revoked.")
    options = doc.get("options") or {}
    queries = options.get(QUERIES) or {}
    writes = options.get(WRITES) or {}
    return Principal(
        "access",
        frozenset(doc.get("permitted") or ()),
        query_filters=list(queries.get("filters") or []),
        autofill=writes.get("autofill") or None,
        options=options,
    )


def _scoped_key_principal(project: ProjectConfig, key: str) -> Principal:
    options = _scoped_options(project.master_key, key)
    if options is None:
        # One answer for every refusal: no oracle on what a forged key decrypted to.
        raise unauthorized("The API key you provided is not valid for this project.")
    operations = options.get("allowed_operations", [])
    filters = options.get("filters", [])
    permitted: set[str] = set()
    if "read" in operations:
        permitted |= _READ_PERMISSIONS
        if filters:
            permitted.discard(DATASETS)
    if "write" in operations:
        permitted |= _WRITE_PERMISSIONS
    return Principal("scoped", frozenset(permitted), query_filters=list(filters))


class _Forged(ValueError):
    """The decrypted options are not exactly what a scoped key can carry."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _Forged("a name appears twice")
    return result


def _no_constant(name: str) -> Any:
    raise _Forged(f"{name} is not JSON")


def _scoped_options(master_key: str, key: str) -> dict[str, Any] | None:
    """The options a scoped key carries, or None unless they are exactly what the format
    defines: ``allowed_operations`` (a list of distinct ``"read"`` / ``"write"``) and
    ``filters`` (well-formed filters with no other fields), nothing else, each name once.

    Scoped keys are AES-CBC without a MAC, so anyone holding one can rewrite the first 16
    bytes of its plaintext by flipping bits of the IV (``{"filters": [{"p`` becomes
    ``{"filterz": [{"p``); refusing everything but the exact format leaves such a forgery
    nothing that parses and means something else.
    """
    from keen import scoped_keys  # lazily: pycryptodome is needed only for scoped keys

    try:
        options = json.loads(_scoped_plaintext(scoped_keys, master_key, key),
                             object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
        _check_scoped(options)
    except (ValueError, RecursionError):  # undecryptable, not JSON, or not the format
        return None
    return dict(options)


def _scoped_plaintext(scoped_keys: Any, master_key: str, key: str) -> str:
    """The decrypted JSON text of a scoped key (the client module's cipher and padding
    rules; its ``decrypt`` parses without the duplicate-name check needed here)."""
    aes_key, block = scoped_keys._aes_key_and_block(master_key)
    raw = binascii.unhexlify(key)
    ciphertext = raw[16:]
    if not ciphertext or len(ciphertext) % 16:
        raise ValueError("not whole AES blocks")
    plaintext = scoped_keys._cipher(aes_key, raw[:16]).decrypt(ciphertext)
    unpadded = scoped_keys._unpadded(plaintext, block)
    for candidate in (unpadded, plaintext):  # padded, or unpadded as keen 0.7.0 made them
        if candidate is None:
            continue
        try:
            text = candidate.decode("utf-8")
            json.loads(text)
        except ValueError:
            continue
        return str(text)
    raise ValueError("not JSON")


_SCOPED_OPTION_NAMES = frozenset({"allowed_operations", "filters"})
_SCOPED_OPERATIONS = frozenset({"read", "write"})
_FILTER_FIELDS = frozenset({"property_name", "operator", "property_value"})
_OR_FIELDS = (frozenset({"operator", "operands"}), frozenset({"operator", "property_value"}))


def _check_scoped(options: Any) -> None:
    if not isinstance(options, dict) or set(options) - _SCOPED_OPTION_NAMES:
        raise _Forged("unknown option")
    operations = options.get("allowed_operations", [])
    if not isinstance(operations, list) or not all(
            isinstance(op, str) and op in _SCOPED_OPERATIONS for op in operations) or (
            len(set(operations)) != len(operations)):
        raise _Forged("allowed_operations")
    filters = options.get("filters", [])
    if not isinstance(filters, list):
        raise _Forged("filters")
    stack = list(filters)
    while stack:
        flt = stack.pop()
        if not isinstance(flt, dict):
            raise _Forged("filter")
        if flt.get("operator") == "or":
            if frozenset(flt) not in _OR_FIELDS:
                raise _Forged("or filter")
            operands = flt.get("operands", flt.get("property_value"))
            if not isinstance(operands, list):
                raise _Forged("or operands")
            stack.extend(operands)
        elif frozenset(flt) != _FILTER_FIELDS:
            raise _Forged("filter fields")
    try:
        check_json(filters, "filters")
        check_filter_counts(normalize_filters(filters))
    except QueryError:
        raise _Forged("filter values") from None


__all__ = [
    "ACCESS_KEY_KIND",
    "ACCESS_KEY_PERMISSIONS",
    "ADMIN",
    "ApiError",
    "Principal",
    "authenticate",
]
