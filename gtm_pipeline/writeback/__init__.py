"""Score payloads, diffing, 200-record batches and per-record results."""
