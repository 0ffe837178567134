"""Encryption at rest (AES-256-GCM with key ids, so keys rotate), pseudonyms, and masking for display."""

import base64
import hashlib
import hmac
import os
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.canonical import normalise_national_id


class DecryptionError(ValueError):
    """Unknown key id, or data that was altered."""


class FieldCipher:
    """Encrypts single fields: `<key_id>:<urlsafe-b64(nonce || ciphertext+tag)>`. Old keys still decrypt."""

    def __init__(self, keys: Mapping[str, bytes], active_key_id: str) -> None:
        if active_key_id not in keys:
            raise ValueError("the active key id has no key")
        for kid, key in keys.items():
            if len(key) != 32:
                raise ValueError(f"key {kid} must be 32 bytes (AES-256)")
        self._keys = {kid: AESGCM(key) for kid, key in keys.items()}
        self._active = active_key_id

    @classmethod
    def from_config(cls, config: str, active: str) -> "FieldCipher":
        """From `k1=<base64 key>,k2=<base64 key>`."""
        keys = {}
        for part in filter(None, (p.strip() for p in config.split(","))):
            kid, _, b64 = part.partition("=")
            keys[kid.strip()] = base64.b64decode(b64.strip() + "==="[: (-len(b64.strip())) % 4])
        return cls(keys, active)

    def encrypt(self, plaintext: str, aad: str = "") -> str:
        nonce = os.urandom(12)
        sealed = self._keys[self._active].encrypt(nonce, plaintext.encode(), aad.encode())
        return f"{self._active}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str, aad: str = "") -> str:
        kid, _, data = token.partition(":")
        cipher = self._keys.get(kid)
        if cipher is None:
            raise DecryptionError(f"unknown key id {kid!r}")
        try:
            raw = base64.urlsafe_b64decode(data)
            return cipher.decrypt(raw[:12], raw[12:], aad.encode()).decode()
        except (InvalidTag, ValueError) as exc:
            raise DecryptionError("the data was altered or the aad does not match") from exc


def person_ref(pepper: bytes, national_id: str) -> str:
    """The pseudonym of a person: HMAC-SHA256(pepper, national ID in its canonical form), hex.

    Edges validate with shared.canonical first; the same normalisation here means no path, however it got
    its ID, can give one person a second pseudonym."""
    return hmac.new(pepper, normalise_national_id(national_id).encode(), hashlib.sha256).hexdigest()


def mask_national_id(value: str) -> str:
    return value[:3] + "*" * max(0, len(value) - 7) + value[-4:] if len(value) > 7 else "*" * len(value)


def mask_account(value: str) -> str:
    return "*" * max(0, len(value) - 4) + value[-4:]


def mask_name(value: str) -> str:
    return value[:1] + "*" * max(1, len(value) - 1) if value else value


def mask_phone(value: str) -> str:
    """A mobile number for display: the first three and last four digits (138****5678)."""
    return value[:3] + "*" * max(0, len(value) - 7) + value[-4:] if len(value) > 7 else "*" * len(value)
