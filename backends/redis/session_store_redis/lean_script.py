"""One of our scripts, sent by SHA on a backend's lean client (:mod:`~.leanconn`).

Every script the lean client sends (``touch_session``, the small compare-and-set, the ordered
writes without an expiry) goes through :func:`run_by_sha`: ``EVALSHA``, and where the server
does not know the script (``NOSCRIPT``: it did not run; a flushed or restarted server)
``SCRIPT LOAD`` of its text, then ``EVALSHA`` again. Those are the commands redis-py's
``Script`` sends, and what the scripts standing for ``MULTI`` send (:mod:`~.one_instant`), so a
user whose ACL allows ``EVALSHA`` and ``SCRIPT LOAD`` but not ``EVAL`` runs every one of them.
(The lean client's ``touch_session`` and compare-and-set used to fall back to ``EVAL`` of the
text, which such a user is refused; a user refused ``SCRIPT LOAD`` gets its ``NOPERM``, which
names that command.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from session_store_redis.leanconn import LeanRedis

__all__ = ["run_by_sha"]


def run_by_sha(lean: LeanRedis, sha: str, text: str, stored: str, args: Sequence[Any]) -> Any:
    """The reply of the script ``text`` (whose SHA is ``sha``) on the key ``stored`` with
    ``args``: ``EVALSHA``; after ``NOSCRIPT``, ``SCRIPT LOAD`` and ``EVALSHA`` once more."""
    try:
        return lean.call("EVALSHA", sha, 1, stored, *args)
    except ResponseError as exc:
        if not (isinstance(exc, NoScriptError) or str(exc).startswith("NOSCRIPT")):
            raise
    lean.call("SCRIPT", "LOAD", text)
    return lean.call("EVALSHA", sha, 1, stored, *args)
