"""Every limit of the local server, in one place (README: "Limits of the local server").

Each limit is generous for real use and protects the server from input that would otherwise cost
it a 500, unbounded memory or a stall: past a limit the server answers a 4xx (or a 503 for the
query time limit, a 507 when the disk or DuckDB's memory cannot hold the work: ``storage_full``)
with an ``error_code`` naming the problem, never a 500.

This module also holds the checks that apply to any JSON value the server is handed (nesting
depth, lone surrogates, which UTF-8 and so SQLite cannot store) and the query deadline that the
storage's SQLite connections and the engine's Python loops honour.
"""

from __future__ import annotations

import contextlib
import contextvars
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

from keen.server._errors import QueryError, bad_request

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_EVENTS",
    "MAX_EVENT_BYTES",
    "MAX_FILTERS",
    "MAX_FUNNEL_STEPS",
    "MAX_GROUP_BY",
    "MAX_IN_VALUES",
    "MAX_NESTING",
    "MAX_OR_NESTING",
    "MAX_PROPERTY_NAME",
    "MAX_PROPERTY_NAMES",
    "MAX_REGEX_LENGTH",
    "MAX_REGEX_REPEAT",
    "MAX_STRING",
    "MAX_TIMEZONE_LENGTH",
    "MAX_UNIT_DIGITS",
    "QUERY_TIMEOUT",
    "QUERY_TIME_LIMIT",
    "QUERY_TIME_LIMIT_MAX",
    "STORAGE_FULL",
    "check_deadline",
    "check_filter_counts",
    "check_json",
    "checked_query_time_limit",
    "deadline_passed",
    "query_deadline",
    "sqlite_limit_error",
    "sqlite_storage_error",
    "storage_full",
    "text_problem",
    "time_left",
    "timeout_error",
]

# --- events --------------------------------------------------------------------------------
MAX_EVENT_BYTES = 900_000  # one event, as sent (413 / batch item EventTooLargeError)
MAX_BATCH_BYTES = 10_000_000  # one batch request body (413)
MAX_BATCH_EVENTS = 100_000  # events of one batch request, all collections together (413)
MAX_STRING = 10_000  # characters of a string value (strictly fewer)
MAX_PROPERTY_NAME = 256  # characters of a property name (strictly fewer)
MAX_NESTING = 100  # levels of objects and lists, in an event and in any query parameter

# --- queries -------------------------------------------------------------------------------
MAX_FILTERS = 200  # filters of one query (the key's included, each `or` and operand counts)
MAX_OR_NESTING = 10  # `or` filters inside `or` filters
MAX_IN_VALUES = 10_000  # values of all the `in` filters of one query
MAX_GROUP_BY = 20  # group_by properties
MAX_FUNNEL_STEPS = 100  # steps of one funnel
MAX_ANALYSES = 100  # analyses of one multi_analysis
MAX_PROPERTY_NAMES = 1_000  # property_names of one extraction
MAX_REGEX_LENGTH = 1_000  # characters of a regex pattern
MAX_REGEX_REPEAT = 1_000  # the largest count in a regex repeat such as a{2,1000}
MAX_TIMEZONE_LENGTH = 64  # characters of a timezone name or number
MAX_UNIT_DIGITS = 9  # digits of N in this_N_days / previous_N_hours / every_N_minutes
QUERY_TIME_LIMIT = 60.0  # seconds a query may run (503 QueryTimeoutError past it)
QUERY_TIME_LIMIT_MAX = 86_400.0  # the longest limit one may set (0 / None: no limit at all)

QUERY_TIMEOUT = "QueryTimeoutError"
TOO_COMPLEX = "QueryTooComplexError"
# a write the database could not keep (507): its disk is full or failed, or (duckdb engine) the
# write is past DuckDB's memory limit; rolled back whole (``storage_full``)
STORAGE_FULL = "InsufficientStorageError"


# --- JSON values ---------------------------------------------------------------------------

def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored (a lone surrogate), or None. Fast for ASCII."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (f"holds a lone surrogate (U+{ord(text[exc.start]):04X}), which is not a "
                "Unicode character")
    return None


def _short(path: str) -> str:
    return path if len(path) <= 200 else f"{path[:100]}...{path[-100:]}"


def check_json(value: Any, what: str, error_code: str = "InvalidParameterError",
               max_depth: int = MAX_NESTING) -> None:
    """Raise a 400 ``error_code`` naming the place when ``value`` (parsed JSON) nests deeper
    than ``max_depth`` or holds a string (or object key) with a lone surrogate.

    Iterative, so any depth the JSON parser produced is checked without recursion.
    """
    stack: list[tuple[Any, str, int]] = [(value, what, 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                raise bad_request(error_code, f"{_short(path)} {problem}.")
            continue
        if not isinstance(item, (dict, list)):
            continue
        if depth >= max_depth:
            raise bad_request(error_code, f"{_short(path)} is nested more than {max_depth} "
                                          "levels deep.")
        if isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str):
                    problem = text_problem(key)
                    if problem:
                        raise bad_request(error_code, f"A name in {_short(path)} {problem}.")
                stack.append((child, f"{path}.{key}", depth + 1))
        else:
            stack.extend((child, f"{path}[{index}]", depth + 1)
                         for index, child in enumerate(item))


def check_filter_counts(filters: list[dict[str, Any]]) -> None:
    """The filter limits of one query, on its normalised filters (the key's included)."""
    total = in_values = 0
    stack: list[tuple[dict[str, Any], int]] = [(flt, 0) for flt in filters]
    while stack:
        flt, depth = stack.pop()
        total += 1
        if flt["operator"] == "or":
            if depth >= MAX_OR_NESTING:
                raise bad_request("InvalidFilterError",
                                  f"'or' filters are nested more than {MAX_OR_NESTING} deep.")
            stack.extend((op, depth + 1) for op in flt["operands"])
        elif flt["operator"] == "in":
            in_values += len(flt["property_value"])
    if total > MAX_FILTERS:
        raise bad_request("InvalidFilterError",
                          f"The query has {total} filters (counting the key's filters and the "
                          f"operands of 'or'); at most {MAX_FILTERS} are allowed.")
    if in_values > MAX_IN_VALUES:
        raise bad_request("InvalidFilterError",
                          f"The 'in' filters of the query list {in_values} values; at most "
                          f"{MAX_IN_VALUES} are allowed.")


# --- the query deadline --------------------------------------------------------------------

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "keen_query_deadline", default=None)


@contextlib.contextmanager
def query_deadline(seconds: float | None) -> Iterator[None]:
    """Run the block under a deadline ``seconds`` from now (None: no deadline). SQLite
    statements of this thread are interrupted past it (see ``deadline_passed``) and Python
    loops call ``check_deadline``; either way the query ends with 503 QueryTimeoutError."""
    outer = _DEADLINE.get()
    deadline = None if seconds is None else time.monotonic() + seconds
    if outer is not None and (deadline is None or outer < deadline):
        deadline = outer
    token = _DEADLINE.set(deadline)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def checked_query_time_limit(value: object, name: str) -> float | None:
    """The query time limit ``value`` as a store's ``query_time_limit``: seconds, or None for
    no limit (``0`` and None both mean that). Anything else but a number greater than 0 and at
    most ``QUERY_TIME_LIMIT_MAX`` (a negative number, NaN, an infinity, a bool, a string) is a
    ValueError naming ``name`` (the option or parameter it was given as). The bound keeps the
    deadline within what a thread can wait for (the duckdb engine's watchdog)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            0 <= value <= QUERY_TIME_LIMIT_MAX):
        raise ValueError(f"{name} must be a number of seconds greater than 0 and at most "
                         f"{QUERY_TIME_LIMIT_MAX:g}, or 0 for no limit; got {value!r}")
    return None if value == 0 else float(value)


def deadline_passed() -> bool:
    """Whether the deadline of the running query has passed (the SQLite progress handler)."""
    deadline = _DEADLINE.get()
    return deadline is not None and time.monotonic() > deadline


def time_left() -> float | None:
    """Seconds until the running query's deadline (negative once passed); None: no deadline.
    Engines that cannot look at the deadline while a statement runs (DuckDB) arm a watchdog
    with it that interrupts the statement."""
    deadline = _DEADLINE.get()
    return None if deadline is None else deadline - time.monotonic()


def timeout_error() -> QueryError:
    return QueryError(503, QUERY_TIMEOUT,
                      "The query took longer than the local server's time limit and was "
                      "stopped; narrow its timeframe or filters.")


def check_deadline() -> None:
    """Raise 503 QueryTimeoutError when the running query is past its deadline."""
    if deadline_passed():
        raise timeout_error()


_SQLITE_LIMITS = (
    "too many sql variables", "expression tree is too large", "parser stack overflow",
    "too many columns", "too many terms", "string or blob too big", "too complex",
    "too many arguments", "nested too deep", "malformed json",
)


def sqlite_limit_error(exc: sqlite3.Error) -> QueryError | None:
    """The answer for a SQLite error a query caused by its size (a 400) or by the deadline
    (a 503); None for any other error."""
    message = str(exc).lower()
    if isinstance(exc, sqlite3.OperationalError) and "interrupted" in message:
        return timeout_error()
    if any(part in message for part in _SQLITE_LIMITS):
        return bad_request(TOO_COMPLEX,
                           f"The query is too large for the local server ({exc}); use fewer "
                           "filters, values or group_by properties.")
    return None


# --- writes the database could not keep ----------------------------------------------------

def storage_full(what: str, *, query: bool = False) -> QueryError:
    """The 507 InsufficientStorageError of a write the database could not keep, rolled back
    whole by the engine (``what``: why, e.g. "could not write (database or disk is full)"), or
    (``query``) of a query whose temporary files the disk could not hold. Both engines answer
    every such failure with it (README: "Limits of the local server")."""
    if query:
        return QueryError(507, STORAGE_FULL,
                          f"The local server's database {what} while answering this query "
                          "(nothing was changed). Free disk space or memory for the server (or "
                          "narrow the query), then ask again.")
    return QueryError(507, STORAGE_FULL,
                      f"The local server's database {what} while storing this change; nothing "
                      "of it was kept. Free disk space or memory for the server (or send less "
                      "at once), then send it again.")


# SQLITE_FULL and SQLITE_IOERR (every extended code of it has this text)
_SQLITE_STORAGE = ("database or disk is full", "disk i/o error")


def sqlite_storage_error(exc: sqlite3.Error, *, query: bool = False) -> QueryError | None:
    """The 507 of a SQLite write (or ``query``) that failed because its storage is full or
    failing; None for any other error."""
    message = str(exc)
    if any(part in message.lower() for part in _SQLITE_STORAGE):
        return storage_full(f"could not write ({message})", query=query)
    return None
