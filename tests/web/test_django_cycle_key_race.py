"""The Django engine's ``cycle_key`` (``session_store/django``),
which ``django.contrib.auth.login`` calls: it now moves what the old id holds *now*, merged with
the request's own changes, then deletes the old id.

Guarantee under attack: no committed change lost. The interleaving is exact: the login's engine
runs the other request's ``save`` at the moment its own ``cycle_key`` deletes the old id (the
engine's own ``delete`` is called unchanged right after). Django's settings can be configured
once per process, so the scenario runs in a child process (as ``test_web_guarantees`` does).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_SETUP = textwrap.dedent(
    """
    import json
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="tests-only", INSTALLED_APPS=["django.contrib.sessions"],
        SESSION_ENGINE="session_store.django", SESSION_STORE_URL="memory://", DATABASES={},
        USE_TZ=True,
    )
    django.setup()
    import session_store.django as engine
    """
)

_SCENARIO = _SETUP + textwrap.dedent(
    """
    class LoginEngine(engine.SessionStore):
        other = None

        def delete(self, session_key=None):
            other, self.other = self.other, None
            if other is not None:
                other.save()  # commits, and is told nothing went wrong
            super().delete(session_key)

    seed = engine.SessionStore()
    seed["cart"] = []
    seed.save()
    old = seed.session_key

    login = LoginEngine(old)
    assert login["cart"] == []
    other = engine.SessionStore(old)
    other["cart"] = ["book"]
    login.other = other

    login.cycle_key()
    login["user"] = "alice"
    login.save()

    after = engine.SessionStore(login.session_key)
    print(json.dumps({"moved": login.session_key != old, "after": dict(after.items())}))
    """
)


def test_a_save_committed_while_cycle_key_moves_the_session_is_kept() -> None:
    """Guarantee: no committed change lost. Input: a session ``{"cart": []}``; request A logs
    in (``cycle_key``, then ``user="alice"``); request B of the same user, which loaded the
    session before, saves ``cart=["book"]`` after A's ``cycle_key`` read the old id and before
    it deleted it. What happened: B's ``save`` returns normally (its compare-and-set matched),
    then A deletes the old id; A's new id holds ``{"cart": [], "user": "alice"}``: B's cart is
    nowhere, though B was never told of a failure (Django's contract for a lost session is
    ``UpdateError``)."""
    done = subprocess.run(
        [sys.executable, "-c", _SCENARIO], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["moved"]
    assert result["after"] == {"cart": ["book"], "user": "alice"}


_AFTER_LOGOUT = _SETUP + textwrap.dedent(
    """
    seed = engine.SessionStore()
    seed["cart"] = ["bob's book"]
    seed["csrf"] = "bob-token"
    seed.save()
    old = seed.session_key

    login = engine.SessionStore(old)
    assert login["cart"] == ["bob's book"]  # read before the logout
    logout = engine.SessionStore(old)
    logout.flush()  # what django.contrib.auth.logout does: the old id is deleted
    assert not engine.SessionStore().exists(old)

    login.cycle_key()
    login["user"] = "alice"
    login.save()
    after = engine.SessionStore(login.session_key)
    print(json.dumps({"after": dict(after.items())}))
    """
)


def test_cycle_key_after_a_logout_does_not_write_the_pre_logout_session_back() -> None:
    """Guarantee: no resurrected logout (a request that read the session before a logout must
    not write it back); the web integrations' MOVE, for the same race, moves only the
    request's own changes, and the engine's ``save`` raises ``UpdateError``. Input: a session
    ``{"cart": [...], "csrf": ...}``; request A loads it; request B logs out (``flush``: the
    id is deleted); then A logs in (``cycle_key``, ``user="alice"``, ``save``). What happened:
    A's new id holds ``cart`` and ``csrf`` from before the logout: ``cycle_key`` found the old
    id gone (``self._store.load`` returned ``None``) and, as for an unreadable session, moved
    the request's own copy."""
    done = subprocess.run(
        [sys.executable, "-c", _AFTER_LOGOUT], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["after"] == {"user": "alice"}
