"""Session schemas: attrs classes registered by name, with their versions and migrations."""

from session_store.schema.dataroom import (
    DocumentExtractionResult,
    EnhancedSessionData,
    ExtractionMethod,
    VisionExtraction,
)
from session_store.schema.registry import (
    SchemaInfo,
    available_schemas,
    get_schema,
    register_schema,
    require_schema,
    schema_for_class,
)

__all__ = [
    "DocumentExtractionResult",
    "EnhancedSessionData",
    "ExtractionMethod",
    "SchemaInfo",
    "VisionExtraction",
    "available_schemas",
    "get_schema",
    "register_schema",
    "require_schema",
    "schema_for_class",
]
