"""Scoped keys (legacy): options such as filters, encrypted with the project's master key.

A scoped key is ``hex(iv) + hex(AES-256-CBC(options JSON))`` with a random 16-byte IV
(keen-api.md section 16). The AES key depends on the master key's length:

* 64 hex characters: the 32 bytes those characters encode; plaintext padded PKCS#7 to 16 bytes;
* anything else (legacy 32-character keys): the key's own characters, padded PKCS#7-style to
  32 bytes; plaintext padded PKCS#7-style to 32-byte blocks.

keen 0.7.0 left block-aligned plaintexts unpadded; ``encrypt`` here always pads (which 0.7.0
decrypts too), and ``decrypt`` accepts both. The options are encrypted as compact JSON (no space
after ``,`` and ``:``; 0.7.0 had them): with the standard padding, a key is then never longer
than the one 0.7.0 made for the same options, and often shorter (scoped keys travel in URLs).
A key that does not decrypt to JSON raises
:class:`~keen.exceptions.ScopedKeyError` instead of returning garbage.

``pycryptodome`` is imported on first use only, so ``import keen`` does not load it.
"""

from __future__ import annotations

import binascii
import functools
import json
import os
from collections.abc import Mapping
from typing import Any

from keen._encoding import dumps_compact
from keen.exceptions import ScopedKeyError

__all__ = ["decrypt", "encrypt"]

_IV_SIZE = 16


@functools.lru_cache(maxsize=16)
def _aes_key_and_block(api_key: str | bytes) -> tuple[bytes, int]:
    """The AES key for ``api_key`` and the plaintext block size its scheme pads to."""
    if isinstance(api_key, bytes):
        api_key = api_key.decode("ascii")
    if not isinstance(api_key, str) or not api_key:
        raise ScopedKeyError("The master key must be a non-empty string.")
    if len(api_key) == 64:
        try:
            return binascii.unhexlify(api_key), 16
        except (binascii.Error, ValueError):
            raise ScopedKeyError("A 64-character master key must be hexadecimal.") from None
    raw = api_key.encode("utf-8")
    if len(raw) > 32:
        raise ScopedKeyError(
            "A master key must be 64 hexadecimal characters, or at most 32 characters "
            "(legacy keys).")
    return (raw if len(raw) == 32 else _pad(raw, 32)), 32


def _pad(data: bytes, block: int) -> bytes:
    count = block - len(data) % block
    return data + bytes([count]) * count


_AES: Any = None


def _cipher(key: bytes, iv: bytes) -> Any:
    global _AES
    if _AES is None:
        from Crypto.Cipher import AES  # loaded on first use only

        _AES = AES
    return _AES.new(key, _AES.MODE_CBC, iv)


def encrypt(api_key: str | bytes, options: Any) -> bytes:
    """A scoped key (hex, as ASCII bytes) carrying ``options``, made with the master key."""
    key, block = _aes_key_and_block(api_key)
    if not isinstance(options, Mapping):
        raise ScopedKeyError("Scoped key options must be a dict such as "
                             "{'allowed_operations': ['read']}, "
                             f"not {type(options).__name__}.")
    try:
        text = dumps_compact(options)
    except (TypeError, ValueError) as exc:
        raise ScopedKeyError(f"Scoped key options cannot be encoded as JSON: {exc}.") from None
    plaintext = _pad(text.encode("utf-8"), block)
    iv = os.urandom(_IV_SIZE)
    ciphertext = _cipher(key, iv).encrypt(plaintext)
    return binascii.hexlify(iv) + binascii.hexlify(ciphertext)


def decrypt(api_key: str | bytes, scoped_key: str | bytes) -> Any:
    """The options inside ``scoped_key``; ScopedKeyError when this master key cannot read it."""
    key, block = _aes_key_and_block(api_key)
    try:
        raw = binascii.unhexlify(scoped_key)
    except (binascii.Error, ValueError, TypeError):
        raise ScopedKeyError("A scoped key must be an even number of hex characters.") from None
    ciphertext = raw[_IV_SIZE:]
    if not ciphertext or len(ciphertext) % 16:
        raise ScopedKeyError("This is not a scoped key: its length is not a whole number "
                             "of AES blocks.")
    plaintext = _cipher(key, raw[:_IV_SIZE]).decrypt(ciphertext)
    for candidate in (_unpadded(plaintext, block), plaintext):
        if candidate is None:
            continue
        try:
            return json.loads(candidate.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            continue
    raise ScopedKeyError(
        "The scoped key cannot be decrypted with this master key (wrong master key, or not "
        "a scoped key).")


def _unpadded(plaintext: bytes, block: int) -> bytes | None:
    """``plaintext`` without valid PKCS#7-style padding, or None when it has none."""
    count = plaintext[-1]
    if 1 <= count <= block and count <= len(plaintext) and \
            plaintext.endswith(bytes([count]) * count):
        return plaintext[:-count]
    return None
