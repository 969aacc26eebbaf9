"""Authenticated encryption at rest: AES-256-GCM with rotating keys.

* The first key encrypts; every key decrypts, so keys rotate without a flag day: add the new key
  in front, deploy, re-encrypt (``session-store migrate``), then drop the old key.
* Each payload starts with a 4-byte key id (from a SHA-256 of the key, not the key) and a random
  12-byte nonce. The associated data binds the header, the codec's namespace, the head of the
  backend's stored keys (its key prefix and separator) and the session key: a ciphertext copied
  under another key, into another codec namespace or under another key prefix of the same
  database fails to decrypt. Format 3 (what a store writes unframed over a backend with a key
  prefix) prefixes each of those fields with its length (8 bytes, big endian), so no two tuples
  bind the same bytes. Format 2 binds the same without the head: written by a codec bound to no
  prefix (one used on its own, a store over ``memory://``, a chain whose shared tiers have
  different prefixes) and by a store over one backend for what it stores inside a chain's
  version frame (``Codec.for_frames``: a chain copies a framed copy to tiers whose prefixes may
  differ, and each must open it read alone); format 1 (read, never written) joined header,
  namespace and key with NUL bytes, which let ("acme", "evil\\0bob") open as ("acme\\0evil",
  "bob"). Formats 1 and 2 keep opening wherever they are copied until rewritten
  (``session-store migrate`` writes format 3 where the store writes it, unframed).
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
    def _aad(ctx: StageContext, head: str = "") -> bytes:
        """The associated data of ``ctx``'s format; ``head``: the stored keys' head (format 3)."""
        version = ctx.header[3:4]
        fields: tuple[bytes, ...] = (ctx.header, ctx.namespace.encode(), ctx.key.encode())
        if version == b"\x01":  # format 1: kept to read what it wrote, never written
            return b"\x00".join((b"session-store/aes-gcm/1", *fields))
        label = b"session-store/aes-gcm/2"
        if version == b"\x03":
            label = b"session-store/aes-gcm/3"
            fields = (ctx.header, ctx.namespace.encode(), head.encode(), ctx.key.encode())
        return label + b"".join(len(field).to_bytes(8, "big") + field for field in fields)

    @staticmethod
    def _heads(ctx: StageContext) -> tuple[str, ...]:
        """The heads a payload of ``ctx``'s format may be bound to (format 3: the context's)."""
        if ctx.header[3:4] != b"\x03":
            return ("",)
        if not ctx.storage:
            raise CorruptPayloadError(
                "encrypted payload is bound to the key prefix of the backend that stored it "
                "(format 3), and this codec is bound to none: read it through a store over "
                "that backend",
                key=ctx.key,
            )
        return ctx.storage

    def encode(self, data: bytes, ctx: StageContext) -> bytes:
        key_id, cipher = self._ciphers[0]
        nonce = os.urandom(_NONCE)
        head = ctx.storage[0] if ctx.storage else ""
        return key_id + nonce + cipher.encrypt(nonce, data, self._aad(ctx, head))

    def decode(self, data: bytes, ctx: StageContext) -> bytes:
        from cryptography.exceptions import InvalidTag

        if len(data) < _KEY_ID + _NONCE + 16:
            raise CorruptPayloadError("encrypted payload is truncated", key=ctx.key)
        key_id, nonce, body = data[:_KEY_ID], data[_KEY_ID : _KEY_ID + _NONCE], data[16:]
        for candidate, cipher in self._ciphers:
            if candidate == key_id:
                for head in self._heads(ctx):  # one, but for a chain whose tiers differ
                    try:
                        return cipher.decrypt(nonce, body, self._aad(ctx, head))
                    except InvalidTag:
                        pass
                raise CorruptPayloadError(
                    "encrypted payload failed authentication: tampered, or stored under "
                    "another key, namespace or key prefix",
                    key=ctx.key,
                )
        raise CorruptPayloadError(
            f"payload was encrypted with key id {key_id.hex()}, which is not configured "
            f"(configured: {', '.join(self.key_ids)})",
            key=ctx.key,
        )

    def __repr__(self) -> str:
        return f"AesGcmStage(key_ids={self.key_ids})"
