"""``get``: print what a store holds under a key, saying what it is.

A key may hold a session-store payload (our header), a legacy data-room session (headerless
JSON, as the first host app stored it), or a value some other code stored there: plain JSON
(``{"documents": 3}``, a list, a number) or opaque bytes (a counter, a blob). Only a payload
with our header or a JSON object holding the data-room app's keys is decoded as a session; any
other JSON is shown as stored, and bytes that are not JSON are described, without failing: a
look at a shared store must not make up a session nor stop at a value that is not one. A
payload with our header that does not decode is an error (exit 1), as it is for ``inspect``.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import click

from session_store.cli.common import (
    JSON_OPTION,
    NAMESPACE_OPTION,
    echo_json,
    make_codec,
    opened,
    url_and_one,
)
from session_store.cli.kinds import LEGACY, PLAIN, SESSION, missing_why, what_is
from session_store.cli.tierreads import read_first
from session_store.keys import validate_key
from session_store.schema.builtin import DATAROOM_KEYS
from session_store.schema.registry import get_schema

__all__ = ["DATAROOM_KEYS", "get", "what_is"]

#: Bytes of an opaque value shown in the text output (``--json`` gives them all, in base64).
_SHOWN_BYTES = 200


@click.command()
@click.argument("args", nargs=-1, required=True, metavar="[URL] KEY")
@NAMESPACE_OPTION
@JSON_OPTION
def get(args: tuple[str, ...], namespace: str, as_json: bool) -> None:
    """Print what KEY holds: a session decoded, as JSON; plain JSON as stored; opaque bytes
    described. A note on stderr says which when it is not a session.

    With --json: one line, {"key", "found", "schema", "version", "stored_version", "stages",
    "data"}; "found" is "session", "legacy data-room session", "plain JSON" or "opaque bytes"
    (which adds "size" and "base64").

    Exit code 0 when KEY holds a value (any of those); 3 when it holds none: no key, or a key
    holding no value (the marker of a retired id, a chain's tombstone), which the error line
    names; 1 when a session-store payload does not decode.
    """
    url, key = url_and_one(args, "KEY")
    validate_key(key)
    with opened(url) as backend:
        hit = read_first(backend, key)
        if hit is None or hit.value is None:
            raise missing_why(backend, key, url)
    found, value = what_is(hit.value, key)
    if found in (SESSION, LEGACY):
        _print_session(key, hit.value, value, make_codec(namespace, backend), as_json)
    elif as_json:
        extra = {} if found == PLAIN else _opaque_fields(hit.value)
        echo_json(
            {
                "key": key,
                "found": found,
                "schema": None,
                "version": None,
                "stored_version": None,
                "stages": [],
                "data": value,
                **extra,
            }
        )
    elif found == PLAIN:
        click.echo(f"session-store: note: {key!r} holds plain JSON, not a session", err=True)
        echo_json(value, pretty=True)
    else:
        click.echo(_describe_opaque(hit.value))


def _opaque_fields(stored: bytes) -> dict[str, Any]:
    return {"size": len(stored), "base64": base64.b64encode(stored).decode("ascii")}


def _describe_opaque(stored: bytes) -> str:
    """One line: the size and the first bytes, as Python writes them (escaped, never raw)."""
    more = f" ... ({len(stored) - _SHOWN_BYTES} B more)" if len(stored) > _SHOWN_BYTES else ""
    return (
        f"opaque bytes, {len(stored)} B (not JSON, not a session-store payload): "
        f"{stored[:_SHOWN_BYTES]!r}{more}"
    )


def _print_session(key: str, stored: bytes, legacy: Any, codec: Any, as_json: bool) -> None:
    """A session, decoded; ``legacy``: a legacy session's JSON as stored (else ``None``)."""
    before = datetime.now(UTC)
    decoded = codec.decode(key, stored)
    data = codec.to_data(decoded.obj, key=key)
    if legacy is not None:
        data = _without_invented_times(data, legacy, before)
    if not as_json:
        echo_json(data, pretty=True)
        return
    info = get_schema(decoded.schema)
    echo_json(
        {
            "key": key,
            "found": SESSION if legacy is None else LEGACY,
            "schema": decoded.schema,
            "version": info.version if info else decoded.stored_version,
            "stored_version": decoded.stored_version,
            "stages": list(decoded.stages),
            "data": data,
        }
    )


def _without_invented_times(data: Any, raw: Any, before: datetime) -> Any:
    """``data`` with every timestamp the decode made up shown as ``None``: a top-level field
    the legacy JSON did not hold, whose value is a time between ``before`` and now. The
    schema's migration gives a legacy session that never had ``created_at`` (nor an
    ``analysis_timestamp``) the time of loading, so the typed object is whole; ``get`` shows
    what is stored, and a time nobody stored is unknown, not "now"."""
    if not isinstance(data, dict) or not isinstance(raw, dict):
        return data
    after = datetime.now(UTC)
    shown = dict(data)
    for name, value in data.items():
        if name in raw or not isinstance(value, str):
            continue
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            continue
        if when.tzinfo is not None and before <= when <= after:
            shown[name] = None
    return shown
