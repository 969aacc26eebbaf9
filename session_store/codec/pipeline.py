"""The codec's stage pipeline: named stages applied in order on save, undone in reverse on load.

requests-cache's ``SerializerPipeline`` is the model: a pipeline is an ordered list of stages,
each one small class (:class:`~session_store.codec.stages.ZstdStage`,
:class:`~session_store.codec.encryption.AesGcmStage`). What this adds is the header: only the
stages that actually ran are listed in it (compression skips a small payload), so a reader
always knows what to undo, and a reader refuses a list the encoder never writes (a stage twice,
or out of order), since each extra zstd layer could expand the payload again.

The byte format is :mod:`session_store.codec.format` and does not change here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

from session_store.codec.encryption import AesGcmStage
from session_store.codec.format import pack_header
from session_store.codec.stages import STAGE_AESGCM, Stage, StageContext, ZstdStage
from session_store.errors import ConfigurationError, CorruptPayloadError, UnknownSchemaVersionError

__all__ = ["KNOWN_STAGES", "STAGE_NAMES", "Pipeline"]

#: Every stage class this code reads, in the order the encoder applies them.
KNOWN_STAGES: tuple[type[ZstdStage] | type[AesGcmStage], ...] = (ZstdStage, AesGcmStage)
#: ``{stage id: name}`` of the known stages (what ``session-store inspect`` shows).
STAGE_NAMES: Mapping[int, str] = MappingProxyType({c.stage_id: c.name for c in KNOWN_STAGES})
_ORDER = tuple(c.stage_id for c in KNOWN_STAGES)
#: The header of a payload no stage applied to.
_BARE_HEADER = pack_header(())


def stage_name(stage_id: int) -> str:
    """The name of a stage id, ``unknown-<id>`` for one this code does not know."""
    return STAGE_NAMES.get(stage_id, f"unknown-{stage_id}")


class Pipeline:
    """The configured stages, in encoding order (unconfigured slots are simply absent)."""

    def __init__(self, stages: Sequence[Stage]) -> None:
        ordered = sorted(stages, key=lambda s: _ORDER.index(s.stage_id))
        if len({s.stage_id for s in ordered}) != len(ordered):
            raise ConfigurationError("a stage is configured twice in the codec pipeline")
        self.stages: tuple[Stage, ...] = tuple(ordered)
        self._by_id = {s.stage_id: s for s in ordered}

    def encode(self, body: bytes, namespace: str, key: str, storage: tuple[str, ...] = ()) -> bytes:
        """Header and payload: ``body`` through every stage that applies to it, in order;
        ``storage``: the one head of the backend's stored keys encryption binds (byte format
        3), or empty (format 2)."""
        applied = [s for s in self.stages if s.applies(body)]
        if not applied:
            return _BARE_HEADER + body
        header = pack_header(tuple(s.stage_id for s in applied), bound=bool(storage))
        ctx = StageContext(namespace, key, header, storage)
        for stage in applied:
            body = stage.encode(body, ctx)
        return header + body

    def decode(self, stage_ids: tuple[int, ...], payload: bytes, ctx: StageContext) -> bytes:
        """Undo ``stage_ids`` (as the header lists them) on ``payload``, last stage first."""
        for stage_id in reversed(stage_ids):
            payload = self.stage(stage_id, ctx.key).decode(payload, ctx)
        return payload

    def check(self, stage_ids: tuple[int, ...], key: str) -> None:
        """Refuse a stage list the encoder cannot write: each stage at most once, in order."""
        for stage_id in stage_ids:
            self.stage(stage_id, key)  # an unknown or unconfigured stage: its own error
        positions = [_ORDER.index(stage_id) for stage_id in stage_ids]
        if positions != sorted(set(positions)):
            names = ", ".join(STAGE_NAMES[i] for i in stage_ids)
            raise CorruptPayloadError(
                f"stage list [{names}] is one the encoder never writes", key=key
            )

    @staticmethod
    def is_encrypted(stage_ids: tuple[int, ...]) -> bool:
        """Whether encryption is the last stage listed (what an encrypted store requires)."""
        return stage_ids[-1:] == (STAGE_AESGCM,)

    def stage(self, stage_id: int, key: str) -> Stage:
        """The configured stage for ``stage_id``; typed errors for unconfigured or unknown."""
        stage = self._by_id.get(stage_id)
        if stage is not None:
            return stage
        if stage_id in STAGE_NAMES:
            raise ConfigurationError(
                f"payload needs the {STAGE_NAMES[stage_id]} stage, which is not configured "
                "(for aes-gcm: set SESSION_STORE_KEYS or pass encryption=AesGcmStage([...]))",
                key=key,
            )
        raise UnknownSchemaVersionError(f"payload uses unknown stage id {stage_id}", key=key)
