"""Parse URLs that name several servers (``redis+cluster://a:7000,b:7001/``), whatever the core's
:func:`session_store.urls.parse_url` makes of the host list.

``urllib`` reads one ``host:port`` per netloc: asked for the port of ``a:7000,b:7001`` it raises.
:func:`parse_multi_host_url` parses the URL with the host list set aside and puts the list back in
``netloc`` (``hostname`` and ``port``, which describe one server, are ``None``);
:func:`session_store_redis.client.parse_hosts` then reads the servers from ``netloc``.
"""

from __future__ import annotations

import dataclasses

from session_store.errors import ConfigurationError
from session_store.urls import BackendURL, parse_url

__all__ = ["parse_multi_host_url"]

_PLACEHOLDER = "hosts.invalid"


def parse_multi_host_url(text: str) -> BackendURL:
    """Parse ``text``, a URL whose netloc may hold ``host:port,host:port``.

    Raises:
        ConfigurationError: not a URL with a scheme, or what :func:`parse_url` refuses.
    """
    if not isinstance(text, str):
        raise ConfigurationError(f"a backend URL must be str, got {type(text).__name__}")
    text = text.strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        return parse_url(text)  # let the core say what is wrong
    end = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=-1)
    netloc = rest if end < 0 else rest[:end]
    userinfo, at, hostlist = netloc.rpartition("@")
    if "," not in hostlist:
        return parse_url(text)
    tail = "" if end < 0 else rest[end:]
    parsed = parse_url(f"{scheme}://{userinfo}{at}{_PLACEHOLDER}{tail}")
    return dataclasses.replace(parsed, netloc=netloc, hostname=None, port=None, raw=text)
