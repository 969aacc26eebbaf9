"""The example shop says where its sessions live when it starts. Before, without
``SESSION_STORE_URL`` it silently kept them in each process's memory: following the example's
README with the variable forgotten, a login on one port was never seen on the other, and
nothing said why."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

APP = Path(__file__).resolve().parents[2] / "examples" / "webapp" / "app.py"


def _shop() -> ModuleType:
    spec = importlib.util.spec_from_file_location("shop_example", APP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_a_url_the_shop_says_processes_will_not_share_sessions() -> None:
    notice = _shop().store_notice(None)
    assert "SESSION_STORE_URL is not set" in notice and "will not see them" in notice


def test_with_a_url_it_names_the_store_password_masked() -> None:
    notice = _shop().store_notice("redis://:hunter2@127.0.0.1:1/0?prefix=shop:")
    assert notice.startswith("sessions in redis://") and "hunter2" not in notice
