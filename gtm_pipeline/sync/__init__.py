"""Extract pages, transform, quality gates, load, cursors: pure functions plus one orchestrator."""
