"""Forged scoped keys and what keys with filters may learn from execution metadata.

Scoped keys are AES-CBC without a MAC: whoever holds one can rewrite the first 16 bytes of its
plaintext by flipping bits of the IV. These tests forge keys that way (with the real cipher) and
check that the server refuses them instead of ignoring what it does not understand.
"""

from __future__ import annotations

import binascii
from typing import Any

import pytest
from _server_helpers import Api, api_fixture, each_engine, error_of, server_fixture  # noqa: F401

from keen import scoped_keys
from keen._encoding import dumps

INVALID = (401, "InvalidApiKeyError")
ONLY_B = [{"property_name": "customer", "operator": "eq", "property_value": "b"}]


def scoped(api: Api, options: dict[str, Any]) -> str:
    return scoped_keys.encrypt(api.server.master_key, options).decode()


def spaced(api: Api, options: dict[str, Any]) -> str:
    """A scoped key of ``options`` as JSON with spaces after separators (0.7.0's layout: the
    forged starts below are written for it; ``encrypt`` now writes compact JSON)."""
    return encrypt_text(api, dumps(options))


def encrypt_text(api: Api, text: str) -> str:
    """A scoped key holding exactly ``text`` (which ``encrypt`` could not produce)."""
    from Crypto.Cipher import AES

    plaintext = text.encode()
    pad = 16 - len(plaintext) % 16
    iv = bytes(range(16))
    cipher = AES.new(binascii.unhexlify(api.server.master_key), AES.MODE_CBC, iv)
    return binascii.hexlify(iv + cipher.encrypt(plaintext + bytes([pad]) * pad)).decode()


def flip(key: str, options: dict[str, Any], forged_start: str) -> str:
    """``key`` (made from ``options``) with the IV changed so that the plaintext starts with
    ``forged_start`` (16 characters) instead."""
    original = dumps(options).encode()[:16]
    wanted = forged_start.encode()
    assert len(wanted) == 16
    raw = bytearray(binascii.unhexlify(key))
    for index in range(16):
        raw[index] ^= original[index] ^ wanted[index]
    return binascii.hexlify(bytes(raw)).decode()


def load(api: Api) -> None:
    api.write("purchases", {"customer": "a", "n": 1}, {"customer": "b", "n": 2},
              {"customer": "b", "n": 3})


def count_with(api: Api, key: str) -> Any:
    return api.post("/queries/count", key, body={"event_collection": "purchases",
                                                 "timeframe": "this_10_years"})


def test_flipping_the_iv_really_rewrites_the_start_of_the_options(api: Api) -> None:
    """The forging helper works: a flip to an equivalent text keeps a working key."""
    load(api)
    options = {"filters": ONLY_B, "allowed_operations": ["read"]}
    key = spaced(api, options)
    same = flip(key, options, '{ "filters":[{"p')  # whitespace moved, same meaning
    assert same != key
    assert count_with(api, same).json()["result"] == 2


@pytest.mark.parametrize("forged_start", [
    '{"filterz": [{"p',   # the filters become an unknown option
    '{"Filters": [{"p',
    '{"a":0,"filters"',   # an extra option (the rest no longer parses either)
])
def test_a_key_whose_filters_were_renamed_by_flipping_iv_bits_is_refused(
    api: Api, forged_start: str,
) -> None:
    load(api)
    options = {"filters": ONLY_B, "allowed_operations": ["read"]}
    key = spaced(api, options)
    assert count_with(api, key).json()["result"] == 2
    forged = flip(key, options, forged_start)
    assert error_of(count_with(api, forged)) == INVALID


def test_a_compact_key_from_encrypt_forged_the_same_way_is_refused(api: Api) -> None:
    load(api)
    options = {"filters": ONLY_B, "allowed_operations": ["read"]}
    key = scoped(api, options)  # compact JSON: '{"filters":[{"pr...'
    assert count_with(api, key).json()["result"] == 2
    raw = bytearray(binascii.unhexlify(key))
    for index, (was, wanted) in enumerate(zip(b'{"filters":[{"pr', b'{"filterz":[{"pr')):
        raw[index] ^= was ^ wanted
    assert error_of(count_with(api, binascii.hexlify(bytes(raw)).decode())) == INVALID


@pytest.mark.parametrize("options", [
    {"filters": ONLY_B, "allowed_operations": ["read"], "timeframe": "this_day"},
    {"filterz": ONLY_B, "allowed_operations": ["read"]},
    {"allowed_operations": "read"},
    {"allowed_operations": ["read", "admin"]},
    {"allowed_operations": ["read", "read"]},
    {"allowed_operations": ["read"], "filters": {"customer": "b"}},
    {"allowed_operations": ["read"], "filters": [{**ONLY_B[0], "note": "x"}]},
    {"allowed_operations": ["read"], "filters": [{"property_name": "customer",
                                                  "operator": "eq"}]},
    {"allowed_operations": ["read"], "filters": [{"property_name": "customer",
                                                  "operator": "sort_of",
                                                  "property_value": "b"}]},
    {"allowed_operations": ["read"], "filters": [{"operator": "or", "operands": [
        {"property_name": "customer", "operator": "eq", "property_value": "b", "x": 1}]}]},
    {"allowed_operations": ["read"], "filters": ["customer == b"]},
])
def test_options_the_format_does_not_define_make_an_invalid_key(
    api: Api, options: Any,
) -> None:
    load(api)
    key = scoped_keys.encrypt(api.server.master_key, options).decode()
    assert error_of(count_with(api, key)) == INVALID


@pytest.mark.parametrize("text", [
    '{"filters": [], "allowed_operations": ["read"], "filters": []}',
    '["read"]',
    '{"allowed_operations": ["read"], "filters": [{"property_name": "n", "operator": "eq", '
    '"property_value": NaN}]}',
])
def test_json_no_key_can_carry_makes_an_invalid_key(api: Api, text: str) -> None:
    load(api)
    assert count_with(api, encrypt_text(api, '{"allowed_operations": ["read"]}')).status_code \
        == 200
    assert error_of(count_with(api, encrypt_text(api, text))) == INVALID


def test_well_formed_keys_still_work(api: Api) -> None:
    load(api)
    for options, expected in [
        ({"allowed_operations": ["read"]}, 3),
        ({"allowed_operations": ["write", "read"], "filters": ONLY_B}, 2),
        ({"allowed_operations": ["read"], "filters": [{"operator": "or", "operands": ONLY_B}]},
         2),
    ]:
        response = count_with(api, scoped(api, options))
        assert response.status_code == 200, (options, response.text)
        assert response.json()["result"] == expected


# --------------------------------------------------------------------------- metadata

def metadata(api: Api, key: str, **params: Any) -> dict[str, Any]:
    response = api.post("/queries/count", key, body={
        "event_collection": "purchases", "timeframe": "this_10_years",
        "include_metadata": True, **params})
    assert response.status_code == 200, response.text
    return dict(response.json()["execution_metadata"])


def load_eight(api: Api) -> None:
    api.write("purchases", *[{"customer": "b", "n": i} for i in range(3)],
              *[{"customer": "a", "n": i, "secret": {"card": "x", "pin": 1}} for i in range(5)])


@each_engine
@pytest.mark.parametrize("kind", ["scoped", "access"])
def test_metadata_of_a_key_with_filters_counts_only_what_the_key_can_read(
    api: Api, kind: str,
) -> None:
    load_eight(api)
    if kind == "scoped":
        key = scoped(api, {"allowed_operations": ["read"], "filters": ONLY_B})
    else:
        key = api.create_key(permitted=["queries"],
                             options={"queries": {"filters": ONLY_B}})
    seen = metadata(api, key)
    # customer, n and the keen.* properties of the three visible events; not secret.card/pin
    everything = metadata(api, api.server.read_key)
    assert everything["events_scanned"] == 8
    assert seen["events_scanned"] == 3
    assert seen["properties_per_event"] == everything["properties_per_event"] - 2
    assert seen["total_properties_scanned"] == 3 * seen["properties_per_event"]
    # The query's own filters still do not change events_scanned (before filters).
    narrowed = metadata(api, key, filters=[{"property_name": "n", "operator": "eq",
                                            "property_value": 0}])
    assert narrowed["events_scanned"] == 3


@each_engine
def test_metadata_of_a_key_without_filters_is_unchanged(api: Api) -> None:
    load_eight(api)
    key = scoped(api, {"allowed_operations": ["read"]})
    assert metadata(api, key)["events_scanned"] == 8


def test_scoped_options_refuses_a_bit_flipped_key_and_reads_a_real_one() -> None:
    from keen.server.auth import _scoped_options

    master = "24077ACBCB198BAAA2110EDDB673282F8E34909FD823A15C55A6253A664BE368"
    options = {"filters": ONLY_B, "allowed_operations": ["read"]}
    key = scoped_keys.encrypt(master, options).decode()
    assert _scoped_options(master, key) == options
    assert _scoped_options(master, flip(key, options, '{"filterz": [{"p')) is None
    assert _scoped_options(master, key.upper()) == options  # hex case does not matter
    assert _scoped_options(master, key[:-32]) is None  # a block cut off


@pytest.mark.parametrize("master", ["ab428324dbdbcfe744", "0123456789abcdef0123456789abcdef"])
def test_scoped_options_reads_keys_of_legacy_master_keys(master: str) -> None:
    from keen.server.auth import _scoped_options

    for options in ({"allowed_operations": ["read"]},
                    {"allowed_operations": ["write"], "filters": ONLY_B}):
        key = scoped_keys.encrypt(master, options).decode()
        assert _scoped_options(master, key) == options
