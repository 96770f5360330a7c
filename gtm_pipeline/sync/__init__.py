"""Extract pages, transform, run the quality gates, load; cursors. Pure functions plus one orchestrator."""
