"""Score payloads, diffing, 200-record batches and per-record results."""

from gtm_pipeline.writeback.engine import WritebackProtocolError, WritebackResult, write_back
from gtm_pipeline.writeback.payloads import batches, build_records, changed_only

__all__ = [
    "WritebackProtocolError",
    "WritebackResult",
    "batches",
    "build_records",
    "changed_only",
    "write_back",
]
