"""The TLS context of an asyncio connection to Redis (``rediss://``), from the URL's certificate
settings: a module of its own so that :mod:`~session_store_redis.aioconn` stays one job."""

from __future__ import annotations

import ssl

from session_store_redis.client import RedisConfig

__all__ = ["ssl_context"]


def ssl_context(config: RedisConfig) -> ssl.SSLContext | None:
    """The context ``config`` asks for; ``None`` for a plain ``redis://`` connection."""
    if not config.tls:
        return None
    settings = config.ssl
    context = ssl.create_default_context(cafile=settings.get("ssl_ca_certs"))
    if settings.get("ssl_certfile"):
        context.load_cert_chain(settings["ssl_certfile"], settings.get("ssl_keyfile"))
    context.check_hostname = bool(settings.get("ssl_check_hostname", True))
    context.verify_mode = {
        "required": ssl.CERT_REQUIRED,
        "optional": ssl.CERT_OPTIONAL,
        "none": ssl.CERT_NONE,
    }[settings.get("ssl_cert_reqs", "required")]
    if context.verify_mode == ssl.CERT_NONE:
        context.check_hostname = False
    return context
