"""The one hypothesis profile of the fuzz suite: quick mode 200 examples, full mode 10 000."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

from gtm_pipeline_tests.modes import scaled

EXAMPLES = scaled(200, 10_000)
fuzz = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
