"""Errors of the Salesforce layer.

One hierarchy, so callers can catch `SalesforceClientError` and still tell apart what a user must
act on (budget spent, connection needs re-authorising) from what a retry might fix. Messages carry
the Salesforce error code and message, never a token.
"""

from __future__ import annotations

from gtm_pipeline.errors import GtmError


class SalesforceClientError(GtmError):
    """Base class of every error raised by gtm_pipeline.salesforce."""


class SalesforceApiError(SalesforceClientError):
    """Salesforce answered with an error the client does not retry itself; `fields` are the
    fields its body blames, when it names any.

    Still `retryable` for a run: a later run may meet a mended org (a field restored, a record
    unlocked); what only a person can fix has its own class below."""

    def __init__(
        self,
        status: int,
        error_code: str,
        message: str,
        *,
        resource: str = "",
        fields: tuple[str, ...] = (),
    ) -> None:
        self.status = status
        self.error_code = error_code
        self.message = message
        self.resource = resource
        self.fields = fields
        where = f" on {resource}" if resource else ""
        super().__init__(f"Salesforce returned HTTP {status} {error_code}{where}: {message}")


class SalesforceUnavailable(SalesforceClientError):
    """Transient failures (5xx, dropped connections, timeouts) outlasted every retry."""


class TlsVerificationFailed(SalesforceClientError):
    """Salesforce's TLS certificate did not verify; never retried, since it will not change."""

    retryable = False


class SessionInvalid(SalesforceClientError):
    """The access token was refused and could not be refreshed: reconnect the org."""

    retryable = False


class ApiLimitExceeded(SalesforceClientError):
    """Salesforce refused the call with REQUEST_LIMIT_EXCEEDED for its daily API budget
    (`TotalRequests`), or for a limit the connector does not recognise.

    Never retried: every further call would be refused too, and would delay the user's other tools.
    """

    retryable = False


class ConcurrencyLimitExceeded(SalesforceClientError):
    """Salesforce kept refusing with REQUEST_LIMIT_EXCEEDED for a concurrency limit
    (`ConcurrentPerOrgLongTxn`, `ConcurrentRequests`...) through every backoff.

    Retryable: too many long requests were running in the org at once, which clears by itself;
    a later attempt of the run (or the next run) can go through. The refused calls were never
    applied, so retrying them is safe.
    """

    def __init__(self, limit: str, attempts: int) -> None:
        self.limit = limit
        self.attempts = attempts
        super().__init__(
            f"Salesforce refused the call {attempts} time(s) with REQUEST_LIMIT_EXCEEDED "
            f"({limit or 'a concurrency limit'}): too many long-running requests are running in "
            "the org at once. This clears by itself; retry the run in a few minutes."
        )


class ApiUsageGuardTripped(ApiLimitExceeded):
    """The connector stopped itself before the org's API usage passed the configured share."""

    def __init__(self, used: int, total: int, share: float) -> None:
        self.used = used
        self.total = total
        self.share = share
        super().__init__(self._describe(used, total, share))

    @staticmethod
    def _describe(used: int, total: int, share: float) -> str:
        resume = "the next run resumes from the last committed page"
        if used >= total:
            return (
                f"Stopped: the org has used {used} of its {total} daily API calls, at or over "
                f"its limit (Salesforce lets an org run over for a while); {resume} once the "
                "24-hour window frees calls"
            )
        return (
            f"Stopped before passing {share:.0%} of the org's daily API budget "
            f"({used}/{total} calls used); {resume}"
        )


class BulkUnavailable(SalesforceClientError):
    """Bulk API 2.0 cannot run this query for this org (no Bulk permission, feature off, or a
    query Bulk does not support); the same data can still be read through REST."""


class BulkJobFailed(SalesforceClientError):
    """A Bulk API 2.0 query job ended Failed or Aborted, or did not finish in the time allowed."""

    def __init__(self, job_id: str, state: str, message: str) -> None:
        self.job_id = job_id
        self.state = state
        super().__init__(f"Bulk query job {job_id} {state}: {message}")
