"""What Salesforce says about its limits: the `Sforce-Limit-Info` header and the limit named by
a `REQUEST_LIMIT_EXCEEDED` refusal.

Pure functions over strings, so every documented form is tested without a server.

`Sforce-Limit-Info` is a `;`-separated list of `name=USED/TOTAL` elements, documented as
`api-usage=18/5000`, `api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)`
and `api-usage=110018/100000; api-bursts=1/750`. simple-salesforce anchors `api-usage` at the start
of the header and drops `api-bursts`, so the header is read here, element by element, in any order:
- `api-usage` is the org's rolling 24-hour share, the only figure the usage guard reads. USED may
  be above TOTAL (an org can run over for a while): that is over any share up to 1, so the default
  guard (0.8) stops there; a share above 1 (say 1.1) is how an operator lets runs use the overage.
- `api-bursts` (times the org ran over its daily limit / monthly entitlement) and
  `per-app-api-usage` (a connected app's own quota) are kept for reporting only: neither changes
  the daily share, and neither stops a run.
Unknown or malformed elements are ignored: a header never makes a call fail.

`REQUEST_LIMIT_EXCEEDED` (HTTP 403) names the limit at the start of its message:
`TotalRequests Limit exceeded.` is the daily budget (stop; the next run resumes later), a name
starting with `Concurrent` (`ConcurrentPerOrgLongTxn Limit exceeded.`, `ConcurrentRequests
(Concurrent API Requests) Limit exceeded`) a short-lived cap on requests running at once (back off
and retry). Any other name (or none) is UNKNOWN and handled conservatively, like the daily limit:
the run stops without retrying, since repeated calls against a limit nobody recognised could only
spend more of the org's budget; the error quotes the limit Salesforce named.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from simple_salesforce.util import PerAppUsage, Usage

LIMIT_INFO_HEADER = "Sforce-Limit-Info"
DAILY_LIMIT_NAME = "TotalRequests"
CONCURRENCY_PREFIX = "Concurrent"

_ELEMENT = re.compile(
    r"^(?P<name>[A-Za-z][A-Za-z-]*)=(?P<used>\d+)/(?P<total>\d+)(?:\(appName=(?P<app>[^)]*)\))?$"
)
_LIMIT_NAME = re.compile(r"^\s*(?P<name>[A-Za-z][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class LimitInfo:
    """One `Sforce-Limit-Info` header, read. Only `api_usage` drives the usage guard."""

    api_usage: Usage | None = None
    api_bursts: Usage | None = None
    per_app: tuple[PerAppUsage, ...] = ()

    def as_dict(self) -> dict[str, object]:
        """JSON-ready, for run metadata (what the org reported, not what the connector counted)."""
        return {
            "api_usage": _pair(self.api_usage),
            "api_bursts": _pair(self.api_bursts),
            "per_app_api_usage": [
                {"app": usage.name, "used": usage.used, "total": usage.total}
                for usage in self.per_app
            ],
        }


def _pair(usage: Usage | None) -> dict[str, int] | None:
    return None if usage is None else {"used": usage.used, "total": usage.total}


def parse_limit_info(header: str | None) -> LimitInfo:
    """Read every element of a `Sforce-Limit-Info` value; see the module docstring."""
    api_usage: Usage | None = None
    api_bursts: Usage | None = None
    per_app: list[PerAppUsage] = []
    for element in (header or "").split(";"):
        match = _ELEMENT.fullmatch(element.strip())
        if match is None:
            continue
        name = match["name"].lower()
        used, total = int(match["used"]), int(match["total"])
        if name == "api-usage" and match["app"] is None:
            api_usage = Usage(used, total)
        elif name == "api-bursts" and match["app"] is None:
            api_bursts = Usage(used, total)
        elif name == "per-app-api-usage" and match["app"] is not None:
            per_app.append(PerAppUsage(used, total, match["app"]))
    return LimitInfo(api_usage, api_bursts, tuple(per_app))


def over_share(usage: Usage, share: float) -> bool:
    """Whether one more call would pass `share` of the daily limit; usage already above the limit
    (USED > TOTAL, which Salesforce allows for a while) is over every share up to 1."""
    return usage.used + 1 > share * usage.total


class RequestLimit(enum.Enum):
    """Which limit a `REQUEST_LIMIT_EXCEEDED` refusal is about."""

    DAILY = "daily"
    CONCURRENCY = "concurrency"
    UNKNOWN = "unknown"


def limit_name(message: str) -> str:
    """The limit a refusal names (`TotalRequests`, `ConcurrentPerOrgLongTxn`...), or ''."""
    match = _LIMIT_NAME.match(message or "")
    return match["name"] if match else ""


def request_limit_kind(message: str) -> RequestLimit:
    """Read the message, not only the code: the same code covers the daily and concurrency caps."""
    name = limit_name(message)
    if name == DAILY_LIMIT_NAME:
        return RequestLimit.DAILY
    if name.startswith(CONCURRENCY_PREFIX):
        return RequestLimit.CONCURRENCY
    return RequestLimit.UNKNOWN
