"""The Salesforce REST client the pipeline uses, built on simple-salesforce.

simple-salesforce does the URL building and JSON decoding. This module adds what a long-running
sync needs on top: paged iteration with a chosen batch size, a token refresh on
`INVALID_SESSION_ID` (retried once, thread-safe), bounded retries with exponential backoff and
jitter on transient failures, a guard that stops before the org's usage passes a set share (read
from `Sforce-Limit-Info` by `limits.py`), and a count of the HTTP calls made.

`REQUEST_LIMIT_EXCEEDED` is read by the limit its message names (`limits.request_limit_kind`):
the daily `TotalRequests` limit, or one the connector does not recognise, raises ApiLimitExceeded
at once (the run stops cleanly); a concurrency limit (`ConcurrentPerOrgLongTxn`...) is retried
after a jittered exponential backoff, capped, up to `concurrency_max_attempts` tries, then raises
the retryable ConcurrencyLimitExceeded. Such a refusal means the call was not applied, so even a
call sent only once otherwise (a collections update) is retried.
"""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError
from simple_salesforce.util import Usage
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception,
    wait_random_exponential,
)
from tenacity import sleep as tenacity_sleep

from gtm_pipeline.config import DEFAULT_API_VERSION
from gtm_pipeline.salesforce.errors import (
    ApiLimitExceeded,
    ApiUsageGuardTripped,
    ConcurrencyLimitExceeded,
    SalesforceApiError,
    SalesforceUnavailable,
    SessionInvalid,
    TlsVerificationFailed,
)
from gtm_pipeline.salesforce.http import DEFAULT_TIMEOUT_SECONDS, PinnedSession
from gtm_pipeline.salesforce.limits import (
    LimitInfo,
    RequestLimit,
    limit_name,
    over_share,
    parse_limit_info,
    request_limit_kind,
)

T = TypeVar("T")

MIN_BATCH_SIZE = 200
MAX_BATCH_SIZE = 2000
MAX_COLLECTION_RECORDS = 200
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_TRANSIENT_NETWORK_ERRORS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


@dataclass(frozen=True)
class Credentials:
    """Where and as whom to call. The token is kept out of repr."""

    instance_url: str
    access_token: str

    def __repr__(self) -> str:
        return f"Credentials(instance_url={self.instance_url!r}, access_token=<redacted>)"


RefreshHook = Callable[[Credentials], Credentials]
"""Called with the credentials Salesforce refused; returns fresh ones (or raises SessionInvalid)."""


@dataclass(frozen=True)
class ClientConfig:
    """Tuning knobs; the defaults suit a production org."""

    api_version: str = DEFAULT_API_VERSION
    ca_bundle: str | None = None
    batch_size: int = MAX_BATCH_SIZE
    max_attempts: int = 5
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    usage_guard_share: float = 0.8
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    concurrency_max_attempts: int = 6
    """Tries of a call Salesforce refuses for a concurrency limit, before giving up."""
    concurrency_backoff_initial_seconds: float = 2.0
    concurrency_backoff_max_seconds: float = 60.0
    """A concurrency limit counts requests running over 20 s: waits are in seconds, not ms."""

    def __post_init__(self) -> None:
        validate_batch_size(self.batch_size)
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.concurrency_max_attempts < 1:
            raise ValueError("concurrency_max_attempts must be at least 1")
        if not self.usage_guard_share > 0:
            raise ValueError("usage_guard_share must be above 0 (above 1 allows the overage)")


@dataclass(frozen=True)
class QueryPage:
    """One page of a query: its records and where it sits in the whole result."""

    records: list[dict[str, Any]]
    total_size: int
    page_number: int
    done: bool


def validate_batch_size(batch_size: int) -> int:
    if not MIN_BATCH_SIZE <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(
            f"batch size must be between {MIN_BATCH_SIZE} and {MAX_BATCH_SIZE} (got {batch_size})"
        )
    return batch_size


def _first_error(exc: SalesforceError) -> Mapping[str, Any] | None:
    """The first object of a Salesforce error body, which is a JSON array of objects."""
    content = exc.content
    if isinstance(content, list) and content and isinstance(content[0], Mapping):
        return content[0]
    return None


def _error_code(exc: SalesforceError) -> tuple[str, str]:
    """The (errorCode, message) of a Salesforce error body."""
    first = _first_error(exc)
    if first is not None:
        return str(first.get("errorCode", "")), str(first.get("message", ""))
    return "", str(exc.content)[:500]


def _error_fields(exc: SalesforceError) -> tuple[str, ...]:
    """The `fields` a Salesforce error body blames (absent from most bodies)."""
    first = _first_error(exc)
    fields = first.get("fields") if first is not None else None
    if not isinstance(fields, list):
        return ()
    return tuple(str(name) for name in fields)


def _request_limit(exc: BaseException) -> RequestLimit | None:
    """Which limit a 403 REQUEST_LIMIT_EXCEEDED is about; None for every other failure."""
    if not isinstance(exc, SalesforceError) or exc.status != 403:
        return None
    code, message = _error_code(exc)
    return request_limit_kind(message) if code == "REQUEST_LIMIT_EXCEEDED" else None


def _is_concurrency_refusal(exc: BaseException | None) -> bool:
    return exc is not None and _request_limit(exc) is RequestLimit.CONCURRENCY


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, requests.exceptions.SSLError):
        return False
    if isinstance(exc, _TRANSIENT_NETWORK_ERRORS):
        return True
    return isinstance(exc, SalesforceError) and exc.status >= 500


def _is_retryable(exc: BaseException) -> bool:
    return _is_transient(exc) or _is_concurrency_refusal(exc)


def _last_failure(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome is not None else None


_NUL_ESCAPE = b"\\u0000"
"""How JSON writes a NUL character; text that merely reads `\\u0000` is written `\\\\u0000`,
which holds it too, so a match only says the parsed values are worth a look."""


def without_nul(value: Any) -> Any:
    """`value` (parsed JSON) with NUL characters removed from every text in it, as the Bulk path
    removes NUL bytes from its CSV (`bulk_jobs.BulkQuery.result_sets`): PostgreSQL stores no
    NUL in text or JSONB, and REST and Bulk reads of the same record must store the same row."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {key: without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_nul(item) for item in value]
    return value


class _OrjsonSalesforce(Salesforce):
    """simple-salesforce with its JSON responses parsed by orjson: a 2,000-record query page in
    3.3 ms instead of 6.1 ms (json and simplejson alike).
    A body orjson refuses (text in another encoding than UTF-8, say) goes through
    simple-salesforce's own parse. Numbers read the same: Salesforce's have at most 18 digits,
    within the 64-bit integers orjson keeps exact. NUL characters are removed from the values
    (`without_nul`), only walked when the body holds an escaped NUL at all."""

    def parse_result_to_json(self, result: requests.Response) -> Any:
        try:
            parsed = orjson.loads(result.content)
        except orjson.JSONDecodeError:
            parsed = super().parse_result_to_json(result)
        return without_nul(parsed) if _NUL_ESCAPE in result.content else parsed


@dataclass
class _Shared:
    """What a client and its counting views share: the HTTP session (its usage readings
    included) and the current credentials, replaced under `lock` when refreshed."""

    session: PinnedSession
    credentials: Credentials
    sf: Salesforce
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Tally:
    """Calls counted across threads."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def counted(self, fn: Callable[[Salesforce], T]) -> Callable[[Salesforce], T]:
        """`fn`, counting each time it runs (each attempt sends one request)."""

        def attempt(sf: Salesforce) -> T:
            with self._lock:
                self.count += 1
            return fn(sf)

        return attempt


class SalesforceClient:
    """A thread-safe Salesforce REST client for one org connection."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        config: ClientConfig | None = None,
        refresh: RefreshHook | None = None,
        sleep: Callable[[float], None] | None = None,
        org_id: str | None = None,
    ) -> None:
        self.config = config or ClientConfig()
        self._org_id = org_id
        self._refresh_hook = refresh
        self._sleep = sleep
        session = PinnedSession(self.config.ca_bundle, self.config.timeout_seconds)
        self._shared = _Shared(session, credentials, self._build_sf(credentials, session))
        self._own_calls: _Tally | None = None

    def __repr__(self) -> str:
        return f"SalesforceClient(instance_url={self.instance_url!r})"

    def counting_view(self) -> SalesforceClient:
        """The same connection (session, credentials, refreshes, usage guard) with a count of
        its own: its `calls_made` are the calls made through it, so work sharing one client
        with other work at once (entities synced at once) still knows what it spent."""
        view = copy.copy(self)
        view._own_calls = _Tally()
        return view

    # -- what callers read -------------------------------------------------------------------

    @property
    def calls_made(self) -> int:
        """HTTP requests sent to Salesforce by this client, retries included (by this view
        only, for a `counting_view`)."""
        if self._own_calls is not None:
            return self._own_calls.count
        return self._shared.session.requests_sent

    @property
    def limit_info(self) -> LimitInfo:
        """Everything the latest `Sforce-Limit-Info` said (daily usage, bursts, per-app quotas)."""
        return parse_limit_info(self._shared.session.limit_info)

    @property
    def api_usage(self) -> Usage | None:
        """The org's daily API usage (`api-usage`) as of the latest response that reported it."""
        return self.limit_info.api_usage

    @property
    def instance_url(self) -> str:
        return self._shared.credentials.instance_url

    @property
    def org_id(self) -> str | None:
        """The org this client talks to (from the connection's identity URL), when known: what
        per-org caches such as the describe cache are keyed by, since an instance URL may serve
        another org later."""
        return self._org_id

    # -- API calls ---------------------------------------------------------------------------

    def query_pages(
        self, soql: str, *, include_deleted: bool = False, batch_size: int | None = None
    ) -> Iterator[QueryPage]:
        """Yield the pages of a SOQL query, following `nextRecordsUrl` until done.

        Page sizes are whatever Salesforce returns; `batch_size` is only a request.
        """
        size = validate_batch_size(batch_size or self.config.batch_size)
        headers = {"Sforce-Query-Options": f"batchSize={size}"}
        result = self._call(
            lambda sf: sf.query(soql, include_deleted=include_deleted, headers=headers)
        )
        page_number = 1
        while True:
            done = bool(result.get("done", True))
            yield QueryPage(
                records=result.get("records", []),
                total_size=int(result.get("totalSize", 0)),
                page_number=page_number,
                done=done,
            )
            if done:
                return
            next_url = result["nextRecordsUrl"]
            result = self._call(
                lambda sf, url=next_url: sf.query_more(url, identifier_is_url=True, headers=headers)
            )
            page_number += 1

    def query_records(
        self, soql: str, *, include_deleted: bool = False, batch_size: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield the records of a SOQL query one by one (pages fetched lazily)."""
        for page in self.query_pages(soql, include_deleted=include_deleted, batch_size=batch_size):
            yield from page.records

    def describe(self, sobject: str) -> dict[str, Any]:
        """The describe document of an sObject (fields, types, updateability)."""
        name = self._identifier(sobject)
        return self._call(lambda sf: sf.restful(f"sobjects/{name}/describe"))

    def update_collection(
        self, records: Sequence[Mapping[str, Any]], *, all_or_none: bool = False
    ) -> list[dict[str, Any]]:
        """Update up to 200 records in one sObject Collections request; one result per record.

        Sent once: a timeout, a dropped connection or a 5xx can come after Salesforce applied
        the update, so a blind retry could write every record twice. The caller decides (the
        writeback engine reads the records back first); such failures raise
        SalesforceUnavailable at once.
        """
        if not records:
            return []
        if len(records) > MAX_COLLECTION_RECORDS:
            raise ValueError(
                f"an sObject Collections request takes at most {MAX_COLLECTION_RECORDS} records "
                f"(got {len(records)})"
            )
        for record in records:
            if not record.get("id") or not (record.get("attributes") or {}).get("type"):
                raise ValueError("every record needs an 'id' and 'attributes.type'")
        body = {"allOrNone": all_or_none, "records": [dict(r) for r in records]}
        results = self._call(
            lambda sf: sf.restful("composite/sobjects", method="PATCH", json=body), attempts=1
        )
        return list(results or [])

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One call to `{instance}/services/data/vXX.X/{path}`, answered as the raw response.

        For endpoints whose bodies are not JSON or whose headers matter (Bulk API 2.0 results:
        CSV plus `Sforce-Locator`). It runs through the same guard, retries, 401 refresh and call
        count as every other call; simple-salesforce's `_call_salesforce` adds the bearer header,
        raises on errors and reads `Sforce-Limit-Info` (the usage guard stays informed).
        `kwargs` go to `requests` (`json`, `params`, `headers`).
        """
        return self._call(
            lambda sf: sf._call_salesforce(method, sf.base_url + path, name=path, **kwargs)
        )

    # -- the call wrapper ----------------------------------------------------------------------

    def _call(self, fn: Callable[[Salesforce], T], *, attempts: int | None = None) -> T:
        """Run one API call with the usage guard, transient retries and one refresh on 401.

        `attempts` caps the tries on a transient failure (default `config.max_attempts`); a call
        that is not safe to repeat passes 1 (a 401 is still retried once: it was not applied).
        """
        self._check_usage_guard()
        sf, used_credentials = self._current()
        if self._own_calls is not None:
            fn = self._own_calls.counted(fn)
        try:
            return self._with_retries(fn, sf, attempts)
        except SalesforceError as exc:
            code, message = _error_code(exc)
            if exc.status == 401 and code == "INVALID_SESSION_ID":
                sf = self._refreshed(used_credentials)
                try:
                    return self._with_retries(fn, sf, attempts)
                except SalesforceError as again:
                    raise self._translate(again) from None
            raise self._translate(exc) from None

    def _with_retries(
        self, fn: Callable[[Salesforce], T], sf: Salesforce, attempts: int | None = None
    ) -> T:
        """Run `fn`, retrying transient failures up to `attempts` tries and concurrency-limit
        refusals up to `config.concurrency_max_attempts`, each with its own capped backoff."""
        attempts = attempts or self.config.max_attempts
        retrying = Retrying(
            retry=retry_if_exception(_is_retryable),
            stop=self._stop_after(attempts),
            wait=self._backoff(),
            reraise=False,
            sleep=self._sleep or tenacity_sleep,
        )
        try:
            return retrying(fn, sf)
        except requests.exceptions.SSLError:
            raise TlsVerificationFailed(
                f"TLS verification of {self.instance_url} failed: set "
                "SALESFORCE_CA_BUNDLE to the CA file that signs its certificate"
            ) from None
        except RetryError as exc:
            last = exc.last_attempt.exception()
            if isinstance(last, SalesforceError) and _is_concurrency_refusal(last):
                raise ConcurrencyLimitExceeded(
                    limit_name(_error_code(last)[1]), exc.last_attempt.attempt_number
                ) from None
            raise SalesforceUnavailable(
                f"Salesforce stayed unavailable after {attempts} attempt(s): "
                f"{self._describe_transient(last)}"
            ) from None

    def _stop_after(self, attempts: int) -> Callable[[RetryCallState], bool]:
        """Stop at `attempts` tries after a transient failure, at the concurrency cap after a
        concurrency refusal (a refused call was not applied, so a call sent once may repeat)."""
        concurrency_attempts = self.config.concurrency_max_attempts

        def stop(state: RetryCallState) -> bool:
            refused = _is_concurrency_refusal(_last_failure(state))
            return state.attempt_number >= (concurrency_attempts if refused else attempts)

        return stop

    def _backoff(self) -> Callable[[RetryCallState], float]:
        """Full-jitter exponential waits, capped: seconds for a concurrency limit (requests that
        run over 20 s must finish), sub-second to start for a transient failure."""
        transient = wait_random_exponential(
            multiplier=self.config.backoff_initial_seconds, max=self.config.backoff_max_seconds
        )
        concurrency = wait_random_exponential(
            multiplier=self.config.concurrency_backoff_initial_seconds,
            max=self.config.concurrency_backoff_max_seconds,
        )

        def wait(state: RetryCallState) -> float:
            chosen = concurrency if _is_concurrency_refusal(_last_failure(state)) else transient
            return chosen(state)

        return wait

    @staticmethod
    def _describe_transient(exc: BaseException | None) -> str:
        if isinstance(exc, SalesforceError):
            code, message = _error_code(exc)
            return f"HTTP {exc.status} {code} {message}".strip()
        return type(exc).__name__

    def _translate(self, exc: SalesforceError) -> Exception:
        code, message = _error_code(exc)
        limit = _request_limit(exc)
        if limit is RequestLimit.DAILY:
            return ApiLimitExceeded(
                "Salesforce refused the call: the org's daily API request limit is exceeded "
                "(REQUEST_LIMIT_EXCEEDED). Wait for the 24-hour window to free calls, "
                "or raise the limit."
            )
        if limit is not None:  # a limit the connector does not know: stop, do not hammer it
            return ApiLimitExceeded(
                "Salesforce refused the call with REQUEST_LIMIT_EXCEEDED for a limit the "
                f"connector does not recognise ({message[:200]!r}); the run stopped without "
                "retrying. Check the org's limits in Setup, then run again."
            )
        if exc.status == 401:
            return SessionInvalid(
                f"Salesforce refused the access token ({code or 'HTTP 401'}); reconnect the org"
            )
        return SalesforceApiError(
            exc.status, code, message, resource=exc.resource_name, fields=_error_fields(exc)
        )

    def _check_usage_guard(self) -> None:
        """Refuse the next call once the org's daily usage would pass the configured share.

        Only `api-usage` counts; `api-bursts` and `per-app-api-usage` are reported, never used.
        """
        usage = self.api_usage
        if usage is None or usage.total <= 0:
            return
        if over_share(usage, self.config.usage_guard_share):
            raise ApiUsageGuardTripped(usage.used, usage.total, self.config.usage_guard_share)

    # -- credentials -------------------------------------------------------------------------

    def _build_sf(self, credentials: Credentials, session: PinnedSession) -> Salesforce:
        return _OrjsonSalesforce(
            instance_url=credentials.instance_url,
            session_id=credentials.access_token,
            version=self.config.api_version,
            session=session,
            # Plain dicts (for the fallback parse): simple-salesforce's default OrderedDict hook
            # took JSON parsing off the C fast path (8.2 ms vs 3.1 ms for a 2,000-record page).
            object_pairs_hook=None,
        )

    def _current(self) -> tuple[Salesforce, Credentials]:
        shared = self._shared
        with shared.lock:
            return shared.sf, shared.credentials

    def _refreshed(self, refused: Credentials) -> Salesforce:
        """New credentials after `refused` was rejected; one refresh however many threads (and
        views) ask."""
        shared = self._shared
        with shared.lock:
            if shared.credentials is not refused:
                return shared.sf  # another thread refreshed while this call was in flight
            if self._refresh_hook is None:
                raise SessionInvalid(
                    "Salesforce refused the access token (INVALID_SESSION_ID) and no refresh is "
                    "configured; reconnect the org"
                )
            fresh = self._refresh_hook(refused)
            shared.credentials = fresh
            # Same session: the usage read so far is kept.
            shared.sf = self._build_sf(fresh, shared.session)
            return shared.sf

    @staticmethod
    def _identifier(name: str) -> str:
        if not _IDENTIFIER.fullmatch(name or ""):
            raise ValueError(f"not a Salesforce API name: {name[:80]!r}")
        return name
