"""What every web integration shares: session ids, the lazy session mapping, and the decision of
what a request's end does to the store; ``session_store.flask``, ``session_store.starlette`` and
``session_store.django`` add the cookie of their framework. One job per module: :mod:`.ids`
(ids, and hiding them in errors), :mod:`.config` (the default store URL and codec),
:mod:`.state` (the session mapping and its changes), :mod:`.plan` (the decision, no I/O),
:mod:`.steps` (the store calls of that decision, once for sync and async) and :mod:`.storeio`
(the calls themselves).

The rules, the same in every framework:

* **Ids** are 256 random bits (``secrets.token_urlsafe(32)``, 43 characters). A cookie that is
  not such an id is ignored without a store lookup, and an id the store does not hold is never
  adopted: the session gets a fresh id when it is first written (no session fixation).
* **Lazy**: nothing is read before the app touches the session; a request that never does costs
  the store nothing, and one that only reads writes no payload.
* **Merged writes**: at the end of a request only the top-level keys it changed or removed are
  written, through the store's ``update`` (compare-and-set, retried on conflict). Two concurrent
  requests of one user that change different keys both keep their change.
* **Regenerate** (on login) moves the data to a new id and deletes the old one; **clearing** a
  session down to nothing (logout) deletes it server-side and expires the cookie.
* **Sliding expiry**: a request that read an existing session without changing it restarts its
  TTL with ``touch`` (no payload write).
"""

from session_store.websession.config import WEB_COMPRESSION_THRESHOLD, store_url, web_codec
from session_store.websession.ids import (
    SESSION_ID_BYTES,
    hiding,
    is_session_id,
    new_session_id,
    shown_id,
)
from session_store.websession.plan import Action, Outcome, Plan, merge_changes, plan_commit
from session_store.websession.state import (
    Data,
    DictSession,
    Read,
    ServerSession,
    SessionState,
    diff,
)
from session_store.websession.steps import commit_steps
from session_store.websession.storeio import acommit, aread_session, commit, read_session

__all__ = [
    "SESSION_ID_BYTES",
    "WEB_COMPRESSION_THRESHOLD",
    "Action",
    "Data",
    "DictSession",
    "Outcome",
    "Plan",
    "Read",
    "ServerSession",
    "SessionState",
    "acommit",
    "aread_session",
    "commit",
    "commit_steps",
    "diff",
    "hiding",
    "is_session_id",
    "merge_changes",
    "new_session_id",
    "plan_commit",
    "read_session",
    "shown_id",
    "store_url",
    "web_codec",
]
