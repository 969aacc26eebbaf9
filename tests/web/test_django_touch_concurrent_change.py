"""The chain's conditional ``touch`` as the Django engine uses it.

Since the conditional touch, a chain's ``touch`` answers whether a shared tier still held the
*version it read* (``False`` once a delete or a newer write landed meanwhile). The Django engine
reads that answer as "the session is gone": with ``SESSION_SAVE_EVERY_REQUEST = True`` a request
that changed nothing touches the session, and a ``False`` raises Django's ``UpdateError``, which
Django's ``SessionMiddleware`` turns into ``SessionInterrupted``: **400 Bad Request**, "the
user may have logged out in a concurrent request". A concurrent request that merely *changed*
the session (a second tab, a polling XHR) is no logout.

The interleaving is forced, not hoped for: the chain's ``touch`` is performed one tier call at
a time, as ``TieredBackend._run`` performs them, and at the one point where another request can
land (after the touch read the tiers, before its first tier ``touch_if``) another **process**
updates the session through its own chain over the same real redis-server and diskcache
directory. Django's settings are configured once per process, so the scenario runs in a child
process driving Django's own test client through Django's own ``SessionMiddleware``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

_SCRIPT = textwrap.dedent(
    """
    import json, subprocess, sys
    import django
    from django.conf import settings

    chain_url = sys.argv[1]
    settings.configure(
        SECRET_KEY="tests-only", ROOT_URLCONF=__name__, ALLOWED_HOSTS=["testserver"],
        INSTALLED_APPS=["django.contrib.sessions"],
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware"],
        SESSION_ENGINE="session_store.django", SESSION_STORE_URL=chain_url, DATABASES={},
        USE_TZ=True, SESSION_COOKIE_AGE=600, SESSION_SAVE_EVERY_REQUEST=True,
    )
    django.setup()
    from django.http import HttpResponse, JsonResponse
    from django.test import Client
    from django.urls import path
    import session_store.django as engine

    def login(request):
        request.session["user"] = "ann"
        request.session["clicks"] = 0
        return HttpResponse("ok")

    def read(request):  # changes nothing: the engine touches the session
        return JsonResponse(dict(request.session.items()))

    def logout(request):
        request.session.flush()
        return HttpResponse("ok")

    urlpatterns = [path("login", login), path("read", read), path("logout", logout)]

    OTHER = '''
    import sys
    from session_store import SessionStore
    from session_store.websession import web_codec
    store = SessionStore(sys.argv[1], dict, codec=web_codec(), ttl=600)
    if sys.argv[3] == "click":
        store.update(sys.argv[2], lambda d: {**d, "clicks": d["clicks"] + 1})
    else:
        assert store.delete(sys.argv[2])
    store.close()
    '''

    def forced(client, sid, what):
        # another request, in another process, lands between the touch's read and its
        # first conditional tier touch
        chain = engine.get_store().backend
        step, fired = chain._step, []

        def interleaved(call):
            if call.fn == "touch_if" and not fired:
                fired.append(call.fn)
                subprocess.run(
                    [sys.executable, "-c", OTHER, chain_url, sid, what], check=True
                )
            return step(call)

        chain._step = interleaved
        try:
            response = client.get("/read")
        finally:
            chain._step = step
        assert fired, "the request never reached a conditional touch"
        return response

    out = {}
    client = Client(raise_request_exception=False)
    client.get("/login")
    sid = client.cookies["sessionid"].value
    response = forced(client, sid, "click")
    out["status"] = response.status_code
    out["after"] = client.get("/read").json()
    response = forced(client, sid, "logout")
    out["logout_status"] = response.status_code
    out["after_logout"] = client.get("/read").json()
    print(json.dumps(out))
    """
)


def test_a_read_only_request_racing_another_requests_write_is_not_a_400(
    redis_url: str, tmp_path: Path
) -> None:
    """Failed before: the read-only request answered 400 (``SessionInterrupted``) although the
    session was alive, only changed by the other process. A racing *logout* must still end the
    request's session (the engine's ``UpdateError``: 400, as Django's own engines answer)."""
    chain_url = f"memory:// | {redis_url} | diskcache://{tmp_path / 'disk'}"
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, chain_url],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["status"] == 200, f"a concurrent change answered as a logout: {out}"
    assert out["after"] == {"user": "ann", "clicks": 1}, out
    assert out["logout_status"] == 400, out
    assert out["after_logout"] == {}, out
