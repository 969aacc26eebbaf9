"""Moved to :mod:`session_store.testing.processes` (it works with any backend URL); these names
stay importable from here."""

from session_store.testing.processes import COUNTER_KEY, race, update_race

__all__ = ["COUNTER_KEY", "race", "update_race"]
