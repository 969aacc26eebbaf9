"""``SessionMapping``: a drop-in for the legacy ``user_sessions`` dict, persisted in a store.

The first host app kept ``user_sessions[user_id] = {...}`` in a plain dict. With this mapping
the same code persists::

    sessions = SessionMapping(SessionStore("memory:// | diskcache:///var/lib/app/sessions"))
    sessions[uid] = {"processed_documents": [...], "drive_link": url}
    sessions[uid]["market_research"] = {...}             # persists
    sessions[uid]["processed_documents"].append(doc)     # persists too: nested changes
    data = sessions[uid]                                  # a real dict: isinstance, json.dumps
    del sessions[uid]; uid in sessions; len(sessions); list(sessions)

* Reading returns a ``dict`` (a subclass that remembers its key) with exactly the keys and
  values stored; nothing is added. Legacy bare-JSON sessions stay in their plain shape.
* **Every change persists, nested ones included.** The dicts and lists inside a session read
  here are tracked (``dict`` / ``list`` subclasses): a change to any of them (``d[k] = v``,
  ``del``, ``update``, ``pop``, ``setdefault``, ``clear``, ``append``, ``extend``, ``insert``,
  ``remove``, ``sort``, ``+=``, ...) is made on your copy, then replayed on the freshly stored
  session with the store's atomic ``update`` (compare-and-set, retried), so two processes
  changing different parts both win. A change that can no longer be applied (the dict it was
  made in was removed from the stored session by another writer) is a
  :class:`ConflictError`, never a silent loss. A change that names a list position (an index,
  ``pop()``, ``insert`` between two items, a slice, or a container reached through an index) is
  replayed only if the fresh list still holds, there, what this copy saw: another writer's
  insert or removal above it is a :class:`ConflictError`, never a change to the wrong item.
  A container taken out of the session (popped, replaced) is detached, as in a plain dict:
  changing it changes nothing stored. A container you hold keeps persisting after the session
  takes in other writers' changes, unless those replaced it (or moved the list item it is):
  then a change through it is a :class:`ConflictError`.
* **A deleted session stays deleted**: a request still holding ``d = sessions[uid]`` after
  ``del sessions[uid]`` gets :class:`ConflictError` from ``d[k] = v`` (nothing is written); only
  ``sessions[uid] = {...}`` (or :meth:`SessionMapping.modify`) creates a session.
* **Keys**: user ids are ``str``; an ``int`` (chat platforms use them) is accepted everywhere and
  means its decimal text: ``m[123]`` and ``m["123"]`` are the same session, ``123 in m`` agrees
  with ``m[123]``, and iteration yields ``"123"``. Other key types are an
  :class:`InvalidKeyError` (``in`` answers ``False``).
* Copies (``copy.copy``, ``copy.deepcopy``, ``dict(d)``) are plain, detached dicts.
* :meth:`SessionMapping.edit` and :meth:`SessionMapping.modify` change a whole session in one
  atomic step. When another writer changed the session meanwhile, ``modify`` runs ``fn``
  again; ``edit`` replays its block's recorded changes on the newer session, and raises
  :class:`ConflictError` (writing nothing of the edit) when the other writer changed what
  the edit changed (:mod:`session_store.mapping.editing`; docs/dataroom.md lists the cases).
* A session stored through :class:`~session_store.dataroom.SessionManager` reads here as its
  JSON data; changes keep it in its typed schema. A session written here reads through the
  manager as its legacy shape.
"""

from __future__ import annotations

from session_store.mapping.sessions import SessionMapping, WriteObserver, user_key
from session_store.mapping.tracked import SessionDict, TrackedDict, TrackedList, plain

__all__ = [
    "SessionDict",
    "SessionMapping",
    "TrackedDict",
    "TrackedList",
    "WriteObserver",
    "plain",
    "user_key",
]
