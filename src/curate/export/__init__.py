"""Export a run as training-ready shards (sft, rl, verl, trl).

Names are imported lazily, so ``import curate.export`` stays light.

>>> import curate.export
>>> "export_run" in curate.export.__all__
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from curate._lazy import attach

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "export_run": "curate.export.shards",
    "build_splits": "curate.export.shards",
    "previous_export": "curate.export.shards",
    "split_draw": "curate.export.ranges",
    "order_draw": "curate.export.ranges",
    "ExportOptions": "curate.export.shards",
    "ExportResult": "curate.export.shards",
    "EXPORT_MANIFEST": "curate.export.shards",
    "FORMATS": "curate.export.formats",
    "write_card": "curate.export.card",
    "publish": "curate.export.hub",
    "PublishResult": "curate.export.hub",
    "Format": "curate.export.formats",
    "json_schema": "curate.export.formats",
    "write_json_schemas": "curate.export.formats",
    "validate": "curate.export.formats",
}

__all__ = [
    "EXPORT_MANIFEST",
    "FORMATS",
    "ExportOptions",
    "ExportResult",
    "Format",
    "PublishResult",
    "build_splits",
    "export_run",
    "json_schema",
    "order_draw",
    "previous_export",
    "publish",
    "split_draw",
    "validate",
    "write_card",
    "write_json_schemas",
]

if TYPE_CHECKING:
    from curate.export.card import write_card
    from curate.export.formats import FORMATS, Format, json_schema, validate, write_json_schemas
    from curate.export.hub import PublishResult, publish
    from curate.export.ranges import order_draw, split_draw
    from curate.export.shards import (
        EXPORT_MANIFEST,
        ExportOptions,
        ExportResult,
        build_splits,
        export_run,
        previous_export,
    )


__getattr__, __dir__ = attach("curate.export", _EXPORTS, globals(), __all__)
