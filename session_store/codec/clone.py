"""Isolated copies of a decoded session, made from a private master copy (issue 17).

The decoded near cache (:mod:`session_store.decoded`) must give every ``load`` of a mutable
session an object of its own: a caller that changes what it loaded must never change what
another ``load`` returns or what is stored. Parsing the kept JSON body again on every hit costs
about three quarters of a decode. Copying the live object instead costs only what it must:
one new container for each ``dict``, ``list`` and mutable attrs instance, while every immutable
leaf (``str``, numbers, ``None``, datetimes, enum members, frozen attrs instances holding only
immutables) is shared.

A generic copy would look at every leaf on every copy (a recursive walk in Python is *slower*
than the parse it would replace). Here the cache keeps one master copy that nobody else ever
holds and that therefore never changes, and :func:`blueprint` reads its shape once: which
containers hold other containers, at which keys. A copy (:func:`clone`) then copies each
container with ``dict.copy`` / ``list.copy`` (C) and revisits only the keys that hold
containers; leaves are never looked at again.

**What a clone calls.** Nothing of the class: an attrs instance is copied slot by slot
(``object.__new__`` and assignment, as :mod:`session_store.codec.evolve` does), so only a class
whose ``__init__`` does nothing but assign its arguments qualifies: attrs-generated for that very
class (a user-written ``__init__`` does not), no validator, converter, ``on_setattr`` hook,
``__attrs_pre_init__`` / ``__attrs_post_init__``, not frozen, slotted with no slot but its fields.
For such a class, ``cls(**fields)`` would do exactly what the slot copy does. An object holding
anything else (another class, a ``dict`` or ``list`` subclass, a ``set``, the same container
reached twice, a type not known to be immutable) gets no blueprint: the cache then rebuilds it
from its body on every hit, as before, and that runs the structure path (``__init__``,
validators, ``__attrs_post_init__``) as a cold load does.
"""

from __future__ import annotations

import enum
import functools
import operator
import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from itertools import repeat
from typing import Any, Final

import attrs

from session_store.codec.evolve import _assigns_only

__all__ = ["Blueprint", "blueprint", "clone", "is_immutable"]

#: Leaves shared between copies: nothing in them can change.
_LEAVES: Final = frozenset(
    {str, int, float, bool, type(None), bytes, datetime, date, time, timedelta, Decimal, uuid.UUID}
)
#: How deep a blueprint goes before giving up (the copy recurses once per level).
_MAX_DEPTH: Final = 200

_copy_each: Final = operator.methodcaller("copy")

#: ``copy(value, children)``: what a node of a blueprint does to its part of the master.
Copier = Callable[[Any, Any], Any]
#: A node: how to copy one value that holds containers, and its children's nodes.
Node = tuple[Copier, Any]


class Blueprint:
    """How to copy one master object: its root node. Made by :func:`blueprint`, used by
    :func:`clone`; valid for as long as the master is not changed (the cache never changes it)."""

    __slots__ = ("_children", "_copy", "containers")

    def __init__(self, node: Node, containers: int) -> None:
        self._copy, self._children = node
        #: Containers (dicts, lists, attrs instances) a copy makes: what it costs.
        self.containers = containers

    def __repr__(self) -> str:
        return f"Blueprint(containers={self.containers})"


def clone(master: Any, plan: Blueprint) -> Any:
    """A new copy of ``master`` that shares no container with it (``plan`` is its blueprint)."""
    return plan._copy(master, plan._children)


class _RefusedError(Exception):
    """The value holds something a blueprint does not copy (see the module docstring)."""


def blueprint(master: Any) -> Blueprint | None:
    """The blueprint of ``master``, or ``None`` if it holds anything a clone cannot copy
    exactly (then the caller keeps rebuilding it from its body). ``master`` must never change
    afterwards, nor be handed to anyone who could change it."""
    counter = [0]
    try:
        node = _node(master, set(), counter, 0)
    except (_RefusedError, RecursionError):
        return None
    if node is None:  # nothing mutable at all: a copy is the object itself
        return Blueprint((_same, None), 0)
    return Blueprint(node, counter[0])


def _same(value: Any, _: Any) -> Any:
    return value


# -- what may be shared ---------------------------------------------------------------------
def is_immutable(value: Any) -> bool:
    """Whether nothing reachable from ``value`` can be changed in place (then it may be shared)."""
    kind = type(value)
    if kind in _LEAVES or isinstance(value, enum.Enum):
        return True
    if kind is tuple or kind is frozenset:
        return all(map(is_immutable, value))
    if attrs.has(kind) and _is_frozen(kind) and _holds_only_fields(kind):
        return all(is_immutable(getattr(value, a.name)) for a in attrs.fields(kind))
    return False


def _is_frozen(cls: type) -> bool:
    """Whether instances of the attrs class ``cls`` refuse attribute assignment."""
    return getattr(cls.__setattr__, "__name__", "") == "_frozen_setattrs"


#: Slots an attrs class may have besides its fields and still hold nothing but them.
_HARMLESS_SLOTS: Final = frozenset({"__weakref__", "_attrs_cached_hash"})


@functools.cache
def _holds_only_fields(cls: type) -> bool:
    """Whether instances of ``cls`` can hold no state but their attrs fields: every class of
    its MRO is slotted, with no slot but the fields (and ``__weakref__``, the cached hash).
    A ``functools.cached_property`` (attrs gives it a slot of its own on a slotted class),
    another slot, or an instance ``__dict__`` (a class that is not slotted) is state a caller
    could fill and change in place after the object is shared: such an object is not shared."""
    fields = {a.name for a in attrs.fields(cls)}
    for klass in cls.__mro__[:-1]:  # all but ``object``
        slots = klass.__dict__.get("__slots__")
        if slots is None:
            return False  # instances have a __dict__
        names = {slots} if isinstance(slots, str) else set(slots)
        if not names <= fields | _HARMLESS_SLOTS:
            return False
    return True


# -- blueprints ---------------------------------------------------------------------------------
def _node(value: Any, seen: set[int], counter: list[int], depth: int) -> Node | None:
    """The node copying ``value``: ``None`` for a shared leaf; raises :class:`_RefusedError`."""
    kind = type(value)
    if kind is dict or kind is list:
        pass
    elif is_immutable(value):
        return None
    elif attrs.has(kind) and _assigns_only(kind):
        return _attrs_node(value, seen, counter, depth)
    else:
        raise _RefusedError(kind.__qualname__)
    if depth > _MAX_DEPTH or id(value) in seen:
        raise _RefusedError("too deep, or one container reached twice")
    seen.add(id(value))
    counter[0] += 1
    items = value.items() if kind is dict else enumerate(value)
    leafy: list[Any] = []  # keys holding a dict or list of leaves: one .copy() each
    nested: list[tuple[Any, Copier, Any]] = []
    for key, item in items:
        sub = _node(item, seen, counter, depth + 1)
        if sub is None:
            continue
        if sub[0] is _copy_container and sub[1] == ((), ()):
            leafy.append(key)
        else:
            nested.append((key, *sub))
    return _specialised(kind, len(value), tuple(leafy), tuple(nested))


def _specialised(kind: type, size: int, leafy: tuple[Any, ...], nested: tuple[Any, ...]) -> Node:
    """The cheapest node for a container whose items at ``leafy`` are containers of leaves and
    at ``nested`` hold deeper containers (each ``(key, copier, sub)``): the shapes of
    session data (a list of like dicts, a dict with one nested part) get a copier of their own,
    so that a copy runs as little Python per container as it can."""
    if not nested:
        if not leafy:
            return _copy_container, ((), ())
        if len(leafy) == size:  # every item a container of leaves: each copied, in C
            return (_copy_all_dict if kind is dict else _copy_all_list), None
        return _copy_leafy, leafy
    if not leafy and len(nested) == size and len({(c, sub) for _, c, sub in nested}) == 1:
        _, copier, sub = nested[0]  # every item alike (a list of like dicts): map, in C
        return (_map_dict if kind is dict else _map_list), (copier, sub)
    if not leafy and len(nested) == 1:
        return _copy_one, nested[0]
    return _copy_container, (leafy, nested)


def _copy_container(value: Any, children: tuple[tuple[Any, ...], tuple[Any, ...]]) -> Any:
    """A dict or list: a shallow copy, then a copy of each item that holds containers."""
    copy = value.copy()
    leafy, nested = children
    for key in leafy:
        copy[key] = value[key].copy()
    for key, copier, sub in nested:
        copy[key] = copier(value[key], sub)
    return copy


def _copy_leafy(value: Any, leafy: tuple[Any, ...]) -> Any:
    """A dict or list whose only containers, at ``leafy``, hold leaves."""
    copy = value.copy()
    for key in leafy:
        copy[key] = value[key].copy()
    return copy


def _copy_one(value: Any, child: tuple[Any, Copier, Any]) -> Any:
    """A dict or list with one item holding containers, and no other container."""
    key, copier, sub = child
    copy = value.copy()
    copy[key] = copier(value[key], sub)
    return copy


def _map_list(value: list[Any], child: tuple[Copier, Any]) -> list[Any]:
    """A list of like items (one node fits all), each copied by a call from C."""
    copier, sub = child
    return list(map(copier, value, repeat(sub)))


def _map_dict(value: dict[Any, Any], child: tuple[Copier, Any]) -> dict[Any, Any]:
    """A dict of like values (one node fits all), each copied by a call from C."""
    copier, sub = child
    return dict(zip(value, map(copier, value.values(), repeat(sub)), strict=True))


def _copy_all_list(value: list[Any], _: Any) -> list[Any]:
    """A list of containers of leaves: each copied, in C."""
    return list(map(_copy_each, value))


def _copy_all_dict(value: dict[Any, Any], _: Any) -> dict[Any, Any]:
    """A dict of containers of leaves: each copied, in C."""
    return dict(zip(value, map(_copy_each, value.values()), strict=True))


def _attrs_node(value: Any, seen: set[int], counter: list[int], depth: int) -> Node:
    """An attrs instance of a class whose ``__init__`` only assigns: a slot-by-slot copy."""
    if depth > _MAX_DEPTH or id(value) in seen:
        raise _RefusedError("too deep, or one object reached twice")
    seen.add(id(value))
    counter[0] += 1
    cls: type = type(value)
    nested = []
    for field in attrs.fields(cls):
        sub = _node(getattr(value, field.name), seen, counter, depth + 1)
        if sub is not None:
            nested.append((field.name, *sub))
    return _shallow(cls), tuple(nested)


@functools.cache
def _shallow(cls: type) -> Copier:
    """The generated copy of an instance of ``cls``: a new instance with the same field values
    (``_assigns_only(cls)`` holds: that is all ``cls(**fields)`` would do), then a copy of
    each field that holds containers."""
    names = [a.name for a in attrs.fields(cls)]  # checked identifiers (_assigns_only)
    lines = ["def copy(o, nested):", "    n = _new(_cls)"]
    lines += [f"    n.{name} = o.{name}" for name in names]
    lines += [
        "    for name, copier, sub in nested:",
        "        _set(n, name, copier(_get(o, name), sub))",
        "    return n",
    ]
    namespace: dict[str, Any] = {
        "_new": object.__new__,
        "_cls": cls,
        "_set": object.__setattr__,
        "_get": getattr,
    }
    # Only checked identifiers appear in the source; values come from the namespace.
    source = "\n".join(lines)
    exec(compile(source, f"<session_store clone {cls.__qualname__}>", "exec"), namespace)  # noqa: S102
    generated: Copier = namespace["copy"]
    return generated
