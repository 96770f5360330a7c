"""The root of every error the project raises on purpose, and what it tells whoever catches it.

`retryable` says whether running the same thing again later may succeed with nobody acting (an
outage, a busy org, a lock another run holds). False means a person must act first (a spent API
budget, a revoked connection, a bad setting or mapping): the Dagster assets then stop without
using their retry policy, and the CLI says what to do. Errors that are not `GtmError`s (bugs,
driver errors) are left to the retry policy, as before.

`user_message` is what a person reads: one line, no secret, no traceback. The CLI prints it and
exits 1.
"""

from __future__ import annotations


class GtmError(Exception):
    """Base of every error gtm-pipeline raises on purpose."""

    retryable: bool = True
    """Whether a later run may succeed without anyone acting; see the module docstring. A class
    says it for all its errors; an error that knows better (OAuthError) sets its own."""

    @property
    def user_message(self) -> str:
        """What the person running the pipeline reads: the message on one line (its lines
        joined, so a driver's hint after a newline is kept; the class name when empty)."""
        lines = [line.strip() for line in str(self).splitlines() if line.strip()]
        return " ".join(lines) if lines else type(self).__name__
