"""Authenticated encryption at rest: AES-256-GCM with rotating keys.

* The first key encrypts; every key decrypts, so keys rotate without a flag day: add the new key
  in front, deploy, re-encrypt (``session-store migrate``), then drop the old key.
* Each payload starts with a 4-byte key id (from a SHA-256 of the key, not the key) and a random
  12-byte nonce. The associated data binds the header, the store's namespace and the session
  key: a ciphertext copied under another key or into another namespace fails to decrypt.
  Format 2 (what is written) prefixes each of those fields with its length (8 bytes, big
  endian), so no two (namespace, key) pairs bind the same bytes; format 1 (read, never written)
  joined them with NUL bytes, which let ("acme", "evil\\0bob") open as ("acme\\0evil", "bob").
  The header, format version included, is itself bound: a payload cannot be downgraded.
* A tampered payload, or one no configured key opens, is :class:`CorruptPayloadError`.
* Keys are never printed, logged or shown in a ``repr``: only their ids.

Keys are 32 random bytes, given as base64 (URL-safe or standard alphabet;
``AesGcmStage.generate_key()`` makes one),
in code or in the ``SESSION_STORE_KEYS`` environment variable (comma-separated, newest first).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from session_store.codec.stages import STAGE_AESGCM, StageContext
from session_store.errors import ConfigurationError, CorruptPayloadError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["KEYS_ENV", "AesGcmStage"]

#: Environment variable holding the keys, comma-separated, the encrypting key first.
KEYS_ENV = "SESSION_STORE_KEYS"
_NONCE = 12
_KEY_ID = 4


def _key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"session-store key id\x00" + key).digest()[:_KEY_ID]


def _decode_key(text: str | bytes) -> bytes:
    if isinstance(text, bytes) and len(text) == 32:
        return text
    try:
        raw = base64.urlsafe_b64decode(text if isinstance(text, bytes) else text.strip().encode())
    except (binascii.Error, ValueError):
        raise ConfigurationError("an encryption key is not valid URL-safe base64") from None
    if len(raw) != 32:
        raise ConfigurationError(
            f"an encryption key must be 32 bytes (AES-256), this one has {len(raw)}"
        )
    return raw


class AesGcmStage:
    """The encryption stage.

    Args:
        keys: one or more 32-byte keys (raw, or URL-safe base64 text); the first encrypts.
    """

    stage_id = STAGE_AESGCM
    name = "aes-gcm"

    def __init__(self, keys: Sequence[str | bytes]) -> None:
        if isinstance(keys, str | bytes):
            raise ConfigurationError("pass a list of keys, the encrypting key first")
        decoded = [_decode_key(k) for k in keys]
        if not decoded:
            raise ConfigurationError("encryption needs at least one key")
        # imported when a store is configured with encryption, not by `import session_store`
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._ciphers: list[tuple[bytes, AESGCM]] = [(_key_id(k), AESGCM(k)) for k in decoded]
        ids = [key_id for key_id, _ in self._ciphers]
        if len(set(ids)) != len(ids):
            raise ConfigurationError("the same encryption key is given twice")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> AesGcmStage | None:
        """The stage for the keys in ``SESSION_STORE_KEYS``, or ``None`` if it is unset or
        empty.

        Raises:
            ConfigurationError: a key is not valid, or a part between commas is empty: what
                ``${NEW},${OLD}`` gives when a secret was not injected. Skipping it would turn
                encryption off (``,``) or encrypt under the old key (``,OLD``) without a word.
        """
        text = (os.environ if environ is None else environ).get(KEYS_ENV, "")
        if not text.strip():
            return None
        keys = text.split(",")
        for number, key in enumerate(keys, 1):
            if not key.strip():
                raise ConfigurationError(
                    f"{KEYS_ENV}, key #{number} is empty (a secret not injected?): give "
                    "every key, comma-separated, the encrypting key first"
                )
            try:
                _decode_key(key)
            except ConfigurationError as exc:
                raise ConfigurationError(f"{KEYS_ENV}, key #{number}: {exc.message}") from None
        return cls(keys)

    @staticmethod
    def generate_key() -> str:
        """A new random key as URL-safe base64 text."""
        return base64.urlsafe_b64encode(os.urandom(32)).decode()

    @property
    def key_ids(self) -> list[str]:
        """Hex ids of the configured keys, encrypting key first; safe to show."""
        return [key_id.hex() for key_id, _ in self._ciphers]

    def applies(self, data: bytes) -> bool:
        return True

    @staticmethod
    def _aad(ctx: StageContext) -> bytes:
        fields = (ctx.header, ctx.namespace.encode(), ctx.key.encode())
        if ctx.header[3:4] == b"\x01":  # format 1: kept to read what it wrote, never written
            return b"\x00".join((b"session-store/aes-gcm/1", *fields))
        return b"session-store/aes-gcm/2" + b"".join(
            len(field).to_bytes(8, "big") + field for field in fields
        )

    def encode(self, data: bytes, ctx: StageContext) -> bytes:
        key_id, cipher = self._ciphers[0]
        nonce = os.urandom(_NONCE)
        return key_id + nonce + cipher.encrypt(nonce, data, self._aad(ctx))

    def decode(self, data: bytes, ctx: StageContext) -> bytes:
        from cryptography.exceptions import InvalidTag

        if len(data) < _KEY_ID + _NONCE + 16:
            raise CorruptPayloadError("encrypted payload is truncated", key=ctx.key)
        key_id, nonce, body = data[:_KEY_ID], data[_KEY_ID : _KEY_ID + _NONCE], data[16:]
        for candidate, cipher in self._ciphers:
            if candidate == key_id:
                try:
                    return cipher.decrypt(nonce, body, self._aad(ctx))
                except InvalidTag:
                    raise CorruptPayloadError(
                        "encrypted payload failed authentication: tampered, or stored under "
                        "another key or namespace",
                        key=ctx.key,
                    ) from None
        raise CorruptPayloadError(
            f"payload was encrypted with key id {key_id.hex()}, which is not configured "
            f"(configured: {', '.join(self.key_ids)})",
            key=ctx.key,
        )

    def __repr__(self) -> str:
        return f"AesGcmStage(key_ids={self.key_ids})"
