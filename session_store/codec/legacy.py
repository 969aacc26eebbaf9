"""The rolling-deploy writer: data-room sessions stored as the plan's JSON.

During a rolling deploy from the first host app's own session manager (the "enhanced session
manager" plan) to session-store, old and new processes share one Redis. The old ones read a
session with ``EnhancedSessionData.from_dict(json.loads(redis.get(f"session:{user_id}")))``;
they cannot read our envelope. :class:`PlanJsonCodec` writes what they read:

* a data-room session (:class:`EnhancedSessionData`, or a plain dict session, which is read as
  the legacy data-room shape the way ``SessionManager`` reads it) is written as the bare JSON
  object ``session.to_dict()`` gives: the plan's nine keys (timestamps as naive UTC ISO
  strings, as ``datetime.utcnow().isoformat()`` wrote them) and every other key the session
  holds. No header, no compression: the plan's ``json.loads`` must read it.
* It is strict JSON: what the plan's ``default=str`` would have turned into text silently is a
  :class:`~session_store.errors.SerializationError` here, and nothing is written.
* The plan's ``from_dict`` needs both timestamps as text, and cannot say "unknown": a session
  whose ``created_at`` is unknown (``None``: a legacy session that records no time) is written
  with its ``last_accessed`` there, the time of this write (the session existed then), as the
  plan's own store would have done. Read back by session-store, that is its creation time:
  the one approximation of this format, which lasts only as long as the rolling deploy.
* Reading is the ordinary codec's: this bare JSON is version 0 of the data-room schema, so the
  new processes read what the old ones write and what they write themselves.
* Other schemas are written in the ordinary envelope.

An old reader cannot decrypt, so this codec refuses encryption (``ConfigurationError``); switch
back to the ordinary :class:`~session_store.codec.Codec` once no process runs the plan's code
(sessions are rewritten in the envelope as they are next stored, or at once with
``session-store migrate``).
"""

from __future__ import annotations

from typing import Any

from session_store.codec import jsonsafe
from session_store.codec.codec import Codec
from session_store.errors import ConfigurationError, SerializationError
from session_store.schema.dataroom import EnhancedSessionData, naive_utc, utc_now
from session_store.schema.registry import get_schema

__all__ = ["PlanJsonCodec", "adopt_dataroom"]


def adopt_dataroom(codec: Codec, key: str, data: dict[str, Any]) -> EnhancedSessionData:
    """A plain dict session the application hands over now as a data-room session: the
    legacy (version 0) data run through every migration of the ``dataroom`` schema, then
    structured, as a load of legacy JSON does, with one difference: a session whose data
    records no creation time (the migration leaves ``created_at`` unknown, ``None``) is
    created now, since the application is creating it. (A store that already holds the
    session keeps the stored ``created_at``: ``SessionManager.store_enhanced_session``.)

    Raises:
        SerializationError: the dict does not make a data-room session.
    """
    info = get_schema("dataroom")
    assert info is not None
    body: Any = dict(data)
    try:
        for version in range(0, info.version):
            body = info.migrations[version](body, key)
        if body.get("created_at") is None:
            body["created_at"] = utc_now().isoformat()
        session = codec.converter.structure(body, EnhancedSessionData)
    except Exception as exc:
        raise SerializationError(
            f"cannot make a data-room session: {type(exc).__name__}: {exc}", key=key
        ) from None
    assert isinstance(session, EnhancedSessionData)
    return session


class PlanJsonCodec(Codec):
    """A :class:`Codec` that writes data-room sessions as the plan's bare JSON (see the module
    docstring). Takes the same arguments; ``compression`` applies only to other schemas.

    Raises:
        ConfigurationError: encryption is configured (passed, or ``SESSION_STORE_KEYS`` set).
    """

    foreign_readers = True  # the plan's code reads these bytes from Redis as they are

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.encryption is not None:
            raise ConfigurationError(
                "the plan's readers cannot decrypt: a rolling-deploy (plan JSON) store cannot "
                "encrypt; finish the deploy first, then turn encryption on"
            )

    def __repr__(self) -> str:
        return f"PlanJsonCodec(legacy_schema={self.legacy_schema!r})"

    def encode(self, key: str, obj: Any) -> bytes:
        """The plan's JSON for a data-room session (or a dict session read as one); the
        ordinary envelope for any other schema."""
        if type(obj) is dict:
            obj = adopt_dataroom(self, key, obj)
        if not isinstance(obj, EnhancedSessionData):
            return super().encode(key, obj)
        data = obj.to_dict()
        for stamp in ("created_at", "last_accessed"):
            if data[stamp] is None:  # unknown: the plan's from_dict cannot read null
                data[stamp] = data["last_accessed"] or naive_utc(utc_now()).isoformat()
        return jsonsafe.dumps(data, key=key)
