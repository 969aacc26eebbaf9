"""Lazy package attributes (PEP 562): each public name imports its module on first access.

The top level, :mod:`session_store.aio` and :mod:`session_store.plugin` use it so that importing
them loads no codec, test kit or optional dependency until a name that needs one is used. Kept to
``sys`` (always loaded) at run time: importing this module costs next to nothing.
"""

from __future__ import annotations

import sys

# Not typing.TYPE_CHECKING: importing typing costs more than everything the top level loads.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(
    package: str, modules: Mapping[str, str], public: Sequence[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for the module named ``package``.

    Args:
        package: the module the functions serve (its ``__name__``).
        modules: each lazy name and the absolute name of the module defining it. A name is
            imported on its first access, then stored in ``package``'s namespace, so later
            accesses are plain attribute reads.
        public: the names ``dir()`` lists besides what is loaded (its ``__all__``).
    """

    def getattr_(name: str) -> Any:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        import importlib  # here: with its dependencies it costs more than this whole module

        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def dir_() -> list[str]:
        return sorted({*vars(sys.modules[package]), *public})

    return getattr_, dir_
