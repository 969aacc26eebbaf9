"""Issue 7, item 6: secrets and access, against real redis-servers started here.

* ``requirepass``: the right password works; a wrong or missing one is a ``BackendError`` that
  says the credentials were refused (not an outage a chain would quietly skip).
* An ACL user limited to the store's key prefix (``~<prefix>\\x1f*``): the store works fully on
  its own prefix; another prefix, or a command the user may not run, is a ``BackendError`` that
  names the missing permission, also through a chain.
* TLS (``rediss://``) with a throw-away certificate authority made here: works with the right
  CA; a server certificate from another CA is refused as such.
* A planted password and a planted encryption key appear nowhere: not in logs captured at
  DEBUG, not in any ``repr``/``str``, not in error messages or their chained causes (whole
  formatted tracebacks are searched), not in the output of ``session-store demo``.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from session_store import (
    AesGcmStage,
    BackendError,
    BackendUnavailableError,
    Codec,
    ConfigurationError,
    CorruptPayloadError,
    SessionMapping,
    SessionStore,
    SessionStoreError,
    open_backend,
    parse_url,
)
from session_store.codec import KEYS_ENV
from session_store.dataroom import EnhancedSessionData, SessionManager
from session_store.rewrite import rewrite_all
from session_store_redis.testing import RedisServer
from session_store_redis.testing.server import TLSFiles
from session_store_redis.testing.tls import make_test_tls

ServerFactory = Callable[..., RedisServer]
CLI = Path(sys.executable).with_name("session-store")  # the console script of this venv


def _plain(url: str, **options: Any) -> SessionStore[Any]:
    return SessionStore(url, dict, codec=Codec(encryption=None), access_interval=None, **options)


# -- requirepass ---------------------------------------------------------------------------------
def test_password_right_wrong_and_missing(redis_server_factory: ServerFactory) -> None:
    server = redis_server_factory(password="right-" + secrets.token_hex(8))
    with _plain(server.url_for(prefix="app:")) as store:
        store.save("k", {"a": 1})
        assert store.update("k", lambda current: {"a": 2}) == {"a": 2}
        assert list(store.keys()) == ["k"]
    for url in (
        f"redis://:wrong@127.0.0.1:{server.port}/0",
        f"redis://127.0.0.1:{server.port}/0",
        f"redis://someone:wrong@127.0.0.1:{server.port}/0",
    ):
        with _plain(url) as store, pytest.raises(BackendError) as caught:
            store.load("k")
        assert not isinstance(caught.value, BackendUnavailableError)
        text = str(caught.value).lower()
        assert "credentials" in text or "auth" in text, text


# -- an ACL user limited to the store's prefix ---------------------------------------------------
@pytest.fixture
def acl_server(redis_server_factory: ServerFactory) -> Iterator[RedisServer]:
    server = redis_server_factory(password="admin-" + secrets.token_hex(8))
    admin = server.client()
    try:
        # stored keys are "<prefix>\x1f<key>" (session_store.keys): the pattern ends with \x1f*
        admin.execute_command(  # type: ignore[no-untyped-call]
            "ACL", "SETUSER", "app", "on", ">app-password", "~app:\x1f*", "+@all", "-@dangerous"
        )
        admin.set("elsewhere:\x1fk", b"not the app's")
        yield server
    finally:
        admin.close()


def _as_app(server: RedisServer, prefix: str) -> str:
    return f"redis://app:app-password@127.0.0.1:{server.port}/0?prefix={quote(prefix)}"


def test_acl_user_limited_to_its_prefix(acl_server: RedisServer) -> None:
    with _plain(_as_app(acl_server, "app:")) as store:
        store.save("k", {"a": 1})
        store.save_many({"x": {"x": 1}, "y": {"y": 1}}, ttl=60)
        assert store.load("k") == {"a": 1}
        assert store.load_many(["x", "y", "z"]) == {"x": {"x": 1}, "y": {"y": 1}}
        assert store.update("k", lambda current: {"a": 2}) == {"a": 2}
        assert store.touch("x", 120) and store.exists("y")
        assert sorted(store.keys()) == ["k", "x", "y"]  # SCAN sees every key; we list ours
        assert store.delete("k") is True
    for prefix in ("elsewhere:", "app", "app:\u00e9"):
        with _plain(_as_app(acl_server, prefix)) as other:
            calls: list[Callable[[], object]] = [
                lambda: other.load("k"),
                lambda: other.save("k", {"b": 1}),
                lambda: other.update("k", lambda current: {"b": 1}),
            ]
            for call in calls:
                with pytest.raises(BackendError) as caught:
                    call()
                assert not isinstance(caught.value, BackendUnavailableError)
                assert "permission" in str(caught.value).lower(), str(caught.value)
                assert caught.value.key == "k"
                assert caught.value.__cause__ is None and caught.value.__context__ is None
            # SCAN needs no key permission in Redis ACLs: names can be listed, never read;
            # a store lists sessions only, so a name it cannot read is a permission error
            if prefix == "elsewhere:":
                with pytest.raises(BackendError, match="permission"):
                    list(other.keys())
                assert list(other.backend.scan()) == ["k"]
            else:
                assert list(other.keys()) == []
    # through a chain, a refusal is not mistaken for an outage and skipped
    with _plain(f"memory:// | {_as_app(acl_server, 'elsewhere:')}") as chain:
        with pytest.raises(BackendError) as caught:
            chain.save("k", {"b": 1})
        assert not isinstance(caught.value, BackendUnavailableError)
    admin = acl_server.client()
    try:
        assert admin.get("elsewhere:\x1fk") == b"not the app's"
        admin.execute_command("ACL", "SETUSER", "app", "-unlink")  # type: ignore[no-untyped-call]
    finally:
        admin.close()
    with _plain(_as_app(acl_server, "app:")) as store, pytest.raises(BackendError) as caught:
        store.delete("x")
    assert "permission" in str(caught.value).lower() and "unlink" in str(caught.value)


# -- TLS with a throw-away certificate authority --------------------------------------------------
@pytest.fixture
def tls(tmp_path: Path) -> tuple[TLSFiles, Path]:
    """Server files signed by a CA made here, and another CA that signed nothing of it."""
    return make_test_tls(tmp_path)


def test_tls_with_a_throw_away_ca(
    redis_server_factory: ServerFactory, tls: tuple[TLSFiles, Path]
) -> None:
    files, other_ca = tls
    server = redis_server_factory(tls=files, password="tls-" + secrets.token_hex(8))
    url = server.url_for(prefix="tls:")
    assert url.startswith("rediss://")
    with _plain(url) as store:
        store.save("k", {"over": "tls"})
        assert store.update("k", lambda current: {**(current or {}), "n": 1}) == {
            "over": "tls",
            "n": 1,
        }
        assert list(store.keys()) == ["k"]
    with (
        _plain(server.url_for(prefix="tls:", ssl_ca_certs=str(other_ca))) as wrong_ca,
        pytest.raises(BackendError) as caught,
    ):
        wrong_ca.load("k")
    assert not isinstance(caught.value, BackendUnavailableError)
    assert "certificate" in str(caught.value)
    plain_url = server.url_for(prefix="tls:").replace("rediss://", "redis://").split("?")[0]
    with (
        _plain(plain_url + "?socket_timeout=1&socket_connect_timeout=1&retries=0") as cleartext,
        pytest.raises(SessionStoreError),  # typed; the server hangs up on cleartext
    ):
        cleartext.load("k")


# -- planted secrets ------------------------------------------------------------------------------
def _forms(secret: str) -> list[str]:
    """The ways a secret could leak: raw, percent-encoded, and a long piece of it."""
    return [secret, quote(secret, safe=""), quote_plus(secret), secret[:16], secret[-16:]]


def _key_forms(key_text: str) -> list[str]:
    raw = base64.urlsafe_b64decode(key_text)
    return [
        *_forms(key_text),
        key_text.rstrip("="),
        raw.hex(),
        base64.b64encode(raw).decode(),
        repr(raw)[2:30],
    ]


def _error_texts(error: BaseException) -> list[str]:
    """``str``, ``repr`` and the whole formatted traceback, chained causes included."""
    texts = [str(error), repr(error)]
    texts.append("".join(traceback.format_exception(error)))
    seen: set[int] = set()
    item: BaseException | None = error
    while item is not None and id(item) not in seen:
        seen.add(id(item))
        texts += [str(item), repr(item), *(repr(arg) for arg in item.args)]
        item = item.__cause__ or item.__context__
    return texts


def test_planted_password_and_encryption_key_never_show(
    redis_server_factory: ServerFactory,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    password = f"pw-{secrets.token_hex(12)}-@:/%|?#"
    key_text = AesGcmStage.generate_key()
    server = redis_server_factory(password=password)
    url = server.url_for(prefix="app:", socket_connect_timeout="1", retries="1")
    assert password not in url
    codec = Codec(encryption=AesGcmStage([key_text]))
    shown: list[str] = []
    errors: list[BaseException] = []

    def expect(kind: type[BaseException], operation: Callable[[], object]) -> None:
        with pytest.raises(kind) as caught:
            operation()
        errors.append(caught.value)

    store = SessionStore(url, EnhancedSessionData, codec=codec)
    chain = SessionStore(f"memory:// | {url}", EnhancedSessionData, codec=codec)
    mapping = SessionMapping(SessionStore(url, dict, codec=codec))
    manager = SessionManager(chain)
    saved = store.save("u1", EnhancedSessionData("u1", document_summary="secret-free"))
    chain.save("u2", EnhancedSessionData("u2"))
    mapping["u3"] = {"a": 1}
    report = rewrite_all(store)
    shown += [repr(store), str(store), repr(chain), repr(mapping), repr(manager), repr(codec)]
    shown += [repr(codec.encryption), str(codec.encryption), repr(store.backend.counters)]
    shown += [repr(store.backend), store.backend.describe(), repr(chain.backend)]
    shown += [repr(parse_url(url)), str(parse_url(url)), repr(saved), repr(report)]
    shown += [report.summary(), repr(server)]
    tier_states = getattr(chain.backend, "tier_states", None)
    if tier_states is not None:
        shown.append(repr(tier_states()))

    # errors of every kind, with their chains
    wrong = _plain(url.replace(quote(password, safe=""), "wrong-password"))
    expect(BackendError, lambda: wrong.load("u1"))
    expect(ConfigurationError, lambda: open_backend(url + "&unknown=1"))
    expect(ConfigurationError, lambda: open_backend(url + "&socket_timeout=soon"))
    expect(ConfigurationError, lambda: AesGcmStage([key_text[:-4]]))  # a damaged key
    expect(ConfigurationError, lambda: AesGcmStage([key_text, key_text]))
    damaged_env = {KEYS_ENV: f"{key_text},{key_text[:30]}"}
    expect(ConfigurationError, lambda: AesGcmStage.from_env(damaged_env))
    another = Codec(encryption=AesGcmStage([AesGcmStage.generate_key()]))
    other_key = SessionStore(url, EnhancedSessionData, codec=another)
    expect(CorruptPayloadError, lambda: other_key.load("u1"))
    store.backend.set("tampered", (store.backend.get("u1") or b"")[:-1] + b"!")
    expect(CorruptPayloadError, lambda: store.load("tampered"))
    server.kill()
    expect(BackendUnavailableError, lambda: store.load("u1"))
    expect(BackendUnavailableError, lambda: store.save("u1", saved))
    expect(SessionStoreError, lambda: chain.update("u2", lambda current: current))
    chain.load("u2")  # served by the memory tier, with the outage logged
    for error in errors:
        shown += _error_texts(error)
    for opened in (store, chain, wrong, other_key, mapping.store):
        opened.close()
    shown += [caplog.text, *(record.getMessage() for record in caplog.records)]
    shown += [repr(record.args) for record in caplog.records]

    # the command line, with the password in bad URLs and the key in the environment
    env = {
        **os.environ,
        KEYS_ENV: key_text,
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    env.pop("SESSION_STORE_URL", None)
    env.pop("REDIS_URL", None)
    secret_url = f"redis://:{quote(password, safe='')}@127.0.0.1:{server.port}/0"
    bad_urls = (
        secret_url,  # the server is dead now
        secret_url + "?socket_timeout=soon",
        secret_url.replace(f":{server.port}/", ":port/"),
        f"memory:// | {secret_url}?socket_connect_timeout=0.5",
        f"redis://{quote(password, safe='')}@127.0.0.1:{server.port}/0",
        f"redis://user:{password}@[::1/0",
        f"diskcache://{tmp_path}/disk?prefix=x&password={quote(password, safe='')}",
    )
    # The seven runs are independent (each its own directory): started together, their
    # interpreter starts and retry pauses overlap instead of adding up.
    runs = [
        subprocess.Popen(
            [str(CLI), "demo", "--url", bad, "--dir", str(tmp_path / f"demo-{n}")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for n, bad in enumerate(bad_urls)
    ]
    try:
        for bad, run in zip(bad_urls, runs, strict=True):
            stdout, stderr = run.communicate(timeout=120)
            assert run.returncode != 0, bad
            assert "Traceback" not in stderr, stderr
            shown += [stdout, stderr]
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
                run.wait()

    server.restart()  # and a run that works, with the password and the key in use
    result = subprocess.run(
        [str(CLI), "demo", "--url", secret_url + "?prefix=demo:", "--dir", str(tmp_path / "ok")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "***" in result.stdout
    shown += [result.stdout, result.stderr]

    planted = _forms(password) + _key_forms(key_text)
    leaks = [(form, text[:300]) for text in shown for form in planted if form in text]
    assert leaks == []
    assert len(errors) == 11 and len(shown) > 60
