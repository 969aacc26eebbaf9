"""The checkpoint file of a resumable rewrite: digests of the finished keys, one JSON line per
batch, flushed and ``fsync``-ed, its first line naming the target it is valid for."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from session_store.codec import Codec
from session_store.errors import ConfigurationError

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointWriter",
    "checkpoint_target",
    "digest",
    "read_checkpoint",
]

#: Version of the checkpoint file format (its first line says which).
CHECKPOINT_FORMAT = 1


def checkpoint_target(codec: Codec, prefix: str, store: str) -> dict[str, Any]:
    """What a checkpoint is valid for: the store (its backend's redacted description, and the
    codec's namespace), the key prefix walked and the encrypting key's id. The store counts:
    one checkpoint file given to the rotations of two stores holding the same keys (two
    tenants) would otherwise make the second skip, and leave under the old key, every key the
    first had finished."""
    key_id = codec.encryption.key_ids[0] if codec.encryption is not None else None
    return {"store": store, "namespace": codec.namespace, "prefix": prefix, "key_id": key_id}


def digest(key: str) -> bytes:
    return hashlib.blake2b(key.encode("utf-8"), digest_size=16).digest()


def read_checkpoint(path: Path, target: dict[str, Any]) -> set[bytes]:
    """The digests of the keys earlier runs finished; empty if there is no checkpoint yet.

    A last line cut short by a crash is ignored (its keys are simply done again).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return set()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the checkpoint {path}: {exc}") from None
    lines = text.split("\n")
    try:
        header = json.loads(lines[0])
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("session-store-rewrite") != CHECKPOINT_FORMAT:
        raise ConfigurationError(f"{path} is not a rewrite checkpoint; refusing to use it")
    if header.get("target") != target:
        raise ConfigurationError(
            f"the checkpoint {path} was written for another rewrite (store, prefix or "
            "encryption key differ); delete it to start over"
        )
    done: set[bytes] = set()
    for line in lines[1:]:
        try:
            record = json.loads(line)
            done.update(bytes.fromhex(item) for item in record["done"])
        except (ValueError, TypeError, KeyError):
            continue  # an empty last line, or one torn by a crash
    return done


class CheckpointWriter:
    """Appends one line per batch to the checkpoint, flushed and fsync-ed; a no-op without one."""

    def __init__(self, path: Path | None, target: dict[str, Any], *, fresh: bool) -> None:
        self._path = path
        self._target = target
        self._fresh = fresh
        self._file: IO[str] | None = None

    def __enter__(self) -> Callable[[list[str]], None]:
        if self._path is not None:
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if self._fresh else 0)
            try:
                fd = os.open(self._path, flags, 0o600)
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot write the checkpoint {self._path}: {exc}"
                ) from None
            self._file = os.fdopen(fd, "a", encoding="utf-8")
            if self._fresh:
                header = {"session-store-rewrite": CHECKPOINT_FORMAT, "target": self._target}
                self._write(json.dumps(header))
        return self._record

    def _record(self, keys: list[str]) -> None:
        if self._file is not None and keys:
            self._write(json.dumps({"done": [digest(key).hex() for key in keys]}))

    def _write(self, line: str) -> None:
        assert self._file is not None
        self._file.write(line + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def __exit__(self, *exc_info: object) -> None:
        if self._file is not None:
            self._file.close()
