"""Scoped keys: compatible with keen 0.7.0 in both directions; round trips; clear failures."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keen import scoped_keys
from keen.exceptions import ScopedKeyError

CASES = json.loads((Path(__file__).parent / "data" / "scoped_keys_0_7_0.json").read_text())["cases"]
KEEN_07_PYTHON = Path("/tmp/k07/venv/bin/python")

KEY_64 = "24077ACBCB198BAAA2110EDDB673282F8E34909FD823A15C55A6253A664BE368"
KEY_32 = "2e79c6ec1d0145be8891bf668599c79a"
KEY_SHORT = "ab428324dbdbcfe744"
MASTER_KEYS = [KEY_64, KEY_64.lower(), KEY_32, KEY_SHORT, "\0" * 32]


def test_fixture_covers_both_formats_and_every_padding_remainder() -> None:
    for length in (64, 32, 18):
        remainders = {c["plaintext_length"] % 32 for c in CASES if len(c["master_key"]) == length}
        assert remainders == set(range(32))


@pytest.mark.parametrize("case", CASES,
                         ids=lambda c: f"{len(c['master_key'])}-{c['plaintext_length']}")
def test_keys_made_by_0_7_0_decrypt(case: dict[str, Any]) -> None:
    assert scoped_keys.decrypt(case["master_key"], case["scoped_key"]) == case["options"]
    assert scoped_keys.decrypt(case["master_key"], case["scoped_key"].upper()) == case["options"]


def test_encrypt_returns_hex_bytes_like_0_7_0() -> None:
    key = scoped_keys.encrypt(KEY_64, {"allowed_operations": ["read"]})
    assert isinstance(key, bytes)
    assert int(key, 16) >= 0 and len(key) % 32 == 0
    assert scoped_keys.decrypt(KEY_64, key.decode()) == {"allowed_operations": ["read"]}


options_strategy = st.dictionaries(
    st.text(min_size=1, max_size=12),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=40),
                 lambda inner: st.lists(inner, max_size=4)
                 | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=10),
    max_size=5)


@settings(max_examples=60, deadline=None)
@given(master=st.sampled_from(MASTER_KEYS), options=options_strategy)
def test_round_trip(master: str, options: dict[str, Any]) -> None:
    assert scoped_keys.decrypt(master, scoped_keys.encrypt(master, options)) == options


@settings(max_examples=30, deadline=None)
@given(options=options_strategy)
def test_other_master_key_cannot_read_it(options: dict[str, Any]) -> None:
    scoped = scoped_keys.encrypt(KEY_64, options)
    with pytest.raises(ScopedKeyError):
        scoped_keys.decrypt(KEY_64[:-2] + "00", scoped)


@pytest.mark.parametrize("garbage", ["", "zz", "abc", "00" * 16, "00" * 40])
def test_garbage_is_a_clear_error(garbage: str) -> None:
    with pytest.raises(ScopedKeyError):
        scoped_keys.decrypt(KEY_64, garbage)


@pytest.mark.parametrize("master", ["", "G" * 64, "x" * 40])
def test_unusable_master_key_is_a_clear_error(master: str) -> None:
    with pytest.raises(ScopedKeyError):
        scoped_keys.encrypt(master, {})


@pytest.mark.parametrize(("options", "problem"), [
    (None, "must be a dict"), ('{"allowed_operations": ["read"]}', "must be a dict"),
    ({"filters": [{"property_value": object()}]}, "cannot be encoded as JSON"),
])
def test_options_that_make_no_usable_key_are_refused(options: Any, problem: str) -> None:
    with pytest.raises(ScopedKeyError, match=problem):
        scoped_keys.encrypt(KEY_64, options)


def test_datetimes_in_options_are_encoded_like_event_values() -> None:
    when = datetime.datetime(2024, 5, 1, 12, tzinfo=datetime.timezone.utc)
    options = {"filters": [{"property_name": "at", "operator": "gt", "property_value": when}]}
    decrypted = scoped_keys.decrypt(KEY_64, scoped_keys.encrypt(KEY_64, options))
    assert decrypted["filters"][0]["property_value"] == "2024-05-01T12:00:00+00:00"


def test_import_keen_stays_cheap() -> None:
    """No Crypto (scoped keys load it), no SQLite (durable delivery does), no thread."""
    code = ("import sys, threading, keen, keen.client\n"
            "print(sorted(m for m in ('Crypto', 'sqlite3') if m in sys.modules),"
            " threading.active_count())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True, cwd=Path(__file__).parent.parent)
    assert out.stdout.strip() == "[] 1"


@pytest.mark.skipif(not KEEN_07_PYTHON.exists(), reason="no keen 0.7.0 virtualenv at /tmp/k07")
def test_keys_made_here_decrypt_with_0_7_0() -> None:
    made = []
    for master in (KEY_64, KEY_32, KEY_SHORT):
        for n in range(32):  # every padding remainder for both block sizes
            options = {"filters": [{"property_name": "account.id", "operator": "eq",
                                    "property_value": "x" * n}]}
            made.append({"master_key": master, "options": options,
                         "scoped_key": scoped_keys.encrypt(master, options).decode()})
    program = (
        "import json, sys\n"
        "from keen import scoped_keys\n"
        "cases = json.load(sys.stdin)\n"
        "out = [scoped_keys.decrypt(c['master_key'], c['scoped_key']) for c in cases]\n"
        "print(json.dumps(out))\n"
    )
    out = subprocess.run([str(KEEN_07_PYTHON), "-c", program], input=json.dumps(made),
                         capture_output=True, text=True, timeout=120, check=True, cwd="/tmp")
    assert json.loads(out.stdout) == [c["options"] for c in made]
