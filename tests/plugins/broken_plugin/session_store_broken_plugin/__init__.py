"""A plugin module that fails to import, to prove a broken plugin never breaks the host."""

raise ImportError("this example plugin is broken on purpose")
