"""The codec: schema objects to versioned, optionally compressed and encrypted bytes, and back."""

from session_store.codec.codec import Codec, Decoded, PayloadInfo, Plain, Snapshot
from session_store.codec.converter import make_session_converter
from session_store.codec.encryption import KEYS_ENV, AesGcmStage
from session_store.codec.format import FORMAT_VERSION, MAGIC
from session_store.codec.jsonsafe import check_storable
from session_store.codec.pipeline import KNOWN_STAGES, Pipeline
from session_store.codec.stages import Stage, StageContext, ZstdStage

__all__ = [
    "FORMAT_VERSION",
    "KEYS_ENV",
    "KNOWN_STAGES",
    "MAGIC",
    "AesGcmStage",
    "Codec",
    "Decoded",
    "PayloadInfo",
    "Pipeline",
    "Plain",
    "Snapshot",
    "Stage",
    "StageContext",
    "ZstdStage",
    "check_storable",
    "make_session_converter",
]
