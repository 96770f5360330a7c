"""Migration scripts, one per revision, applied in order by `gtm_pipeline.store.migrate`."""
