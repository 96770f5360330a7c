"""Fault rules: what can go wrong on the wire, added at run time through the control API.

Each rule matches requests by method and a regular expression on the path, and fires either for
the next `times` matching requests or with a `probability` drawn from one seeded generator, so a
sequential client sees the same faults on every run. Rules are plain data in and out (JSON), so a
test reads exactly what it asked for.

`concurrency_limit` answers 403 `REQUEST_LIMIT_EXCEEDED` with a concurrency limit's message
(`limit`: ConcurrentPerOrgLongTxn by default, or ConcurrentRequests): Salesforce's refusal when too
many long-running requests run in the org at once, under the same code as the daily limit.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gtm_pipeline.emulator.limits import (
    CONCURRENCY_MESSAGES,
    DEFAULT_CONCURRENCY_LIMIT,
    REQUEST_LIMIT_EXCEEDED,
    REQUEST_LIMIT_STATUS,
)

DEFAULT_PATH = r"^/services/data/"
KINDS = ("status", "concurrency_limit", "drop", "latency", "expire_sessions")
ANSWERING_KINDS = frozenset({"status", "concurrency_limit"})
"""Kinds that answer the request with an error status instead of the API."""

STATUS_BODIES: dict[int, tuple[str, str]] = {
    500: ("UNKNOWN_EXCEPTION", "An unexpected error occurred. Please try again."),
    502: ("SERVER_UNAVAILABLE", "Bad gateway: the server is temporarily unavailable."),
    503: ("SERVER_UNAVAILABLE", "Server is temporarily unavailable. Please try again later."),
    504: ("SERVER_UNAVAILABLE", "The server did not respond in time. Please try again later."),
}


class FaultRuleError(ValueError):
    """A fault rule that cannot be understood; the message says which field is wrong."""


@dataclass
class FaultRule:
    """One rule. `remaining` counts down for `times` rules and is None for probabilistic ones."""

    id: int
    kind: str
    path: re.Pattern[str]
    methods: frozenset[str] | None
    remaining: int | None
    probability: float | None
    status: int = 503
    error_code: str = ""
    message: str = ""
    seconds: float = 0.0
    after_calls: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        return self.path.search(path) is not None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "kind": self.kind, "path": self.path.pattern}
        if self.methods is not None:
            data["methods"] = sorted(self.methods)
        if self.kind == "expire_sessions":
            data["after_calls"] = self.after_calls
            return data
        data["times"] = self.remaining
        data["probability"] = self.probability
        if self.kind in ANSWERING_KINDS:
            data.update(status=self.status, error_code=self.error_code, message=self.message)
        if self.kind == "latency":
            data["seconds"] = self.seconds
        return data


@dataclass
class FaultDecision:
    """What the server must do to one request; several rules may contribute."""

    latency: float = 0.0
    status: FaultRule | None = None
    drop: bool = False
    expire_sessions: bool = False
    fired: list[int] = field(default_factory=list)


def _number(spec: Mapping[str, Any], key: str, kind: type, *, minimum: float) -> Any:
    value = spec[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultRuleError(f"fault rule field {key!r} must be a number")
    if kind is int and not float(value).is_integer():
        raise FaultRuleError(f"fault rule field {key!r} must be a whole number")
    if value < minimum:
        raise FaultRuleError(f"fault rule field {key!r} must be at least {minimum}")
    return kind(value)


def _trigger(spec: Mapping[str, Any]) -> tuple[int | None, float | None]:
    times = _number(spec, "times", int, minimum=1) if spec.get("times") is not None else None
    probability = None
    if spec.get("probability") is not None:
        probability = _number(spec, "probability", float, minimum=0.0)
        if probability > 1.0:
            raise FaultRuleError("fault rule field 'probability' must be between 0 and 1")
    if times is None and probability is None:
        raise FaultRuleError("a fault rule needs 'times' (next N requests) or 'probability'")
    if times is not None and probability is not None:
        raise FaultRuleError("a fault rule takes 'times' or 'probability', not both")
    return times, probability


def parse_rule(rule_id: int, spec: Any) -> FaultRule:
    """Build a rule from its JSON form, rejecting unknown kinds and fields with a clear message."""
    if not isinstance(spec, Mapping):
        raise FaultRuleError("a fault rule must be a JSON object")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise FaultRuleError(f"fault rule 'kind' must be one of {', '.join(KINDS)}")
    allowed = {"kind", "path", "methods", "times", "probability"}
    allowed |= {
        "status": {"status", "error_code", "message"},
        "concurrency_limit": {"limit"},
        "drop": set(),
        "latency": {"seconds"},
        "expire_sessions": {"after_calls"},
    }[kind]
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise FaultRuleError(f"unknown field(s) for a {kind!r} fault rule: {', '.join(unknown)}")
    try:
        path = re.compile(spec.get("path") or DEFAULT_PATH)
    except (re.error, TypeError) as exc:
        raise FaultRuleError("fault rule 'path' must be a valid regular expression") from exc
    methods = spec.get("methods")
    if methods is not None:
        if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
            raise FaultRuleError("fault rule 'methods' must be a list of HTTP method names")
        methods = frozenset(m.upper() for m in methods)
    rule = FaultRule(rule_id, kind, path, methods, remaining=None, probability=None)
    if kind == "expire_sessions":
        rule.after_calls = (
            _number(spec, "after_calls", int, minimum=0) if "after_calls" in spec else 0
        )
        return rule
    rule.remaining, rule.probability = _trigger(spec)
    if kind == "status":
        rule.status = _number(spec, "status", int, minimum=400) if "status" in spec else 503
        if rule.status > 599:
            raise FaultRuleError("fault rule 'status' must be an HTTP error status (400-599)")
        code, message = STATUS_BODIES.get(rule.status, ("SERVER_UNAVAILABLE", "Server error."))
        rule.error_code = str(spec.get("error_code") or code)
        rule.message = str(spec.get("message") or message)
    elif kind == "concurrency_limit":
        limit = spec.get("limit", DEFAULT_CONCURRENCY_LIMIT)
        if limit not in CONCURRENCY_MESSAGES:
            raise FaultRuleError(
                f"fault rule 'limit' must be one of {', '.join(CONCURRENCY_MESSAGES)}"
            )
        rule.status, rule.error_code = REQUEST_LIMIT_STATUS, REQUEST_LIMIT_EXCEEDED
        rule.message = CONCURRENCY_MESSAGES[limit]
    elif kind == "latency":
        rule.seconds = _number(spec, "seconds", float, minimum=0.0)
        if rule.seconds > 120:
            raise FaultRuleError("fault rule 'seconds' must be at most 120")
    return rule


class FaultPlan:
    """The active rules, evaluated in the order they were added."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._next_id = 1
        self._random = random.Random(seed)

    def reseed(self, seed: int) -> None:
        with self._lock:
            self._random = random.Random(seed)

    def add(self, specs: list[Any]) -> list[FaultRule]:
        """Validate every spec first, then add them all: a bad list adds nothing."""
        with self._lock:
            rules = [parse_rule(self._next_id + i, spec) for i, spec in enumerate(specs)]
            self._next_id += len(rules)
            self._rules.extend(rules)
            return rules

    def clear(self) -> int:
        with self._lock:
            count = len(self._rules)
            self._rules.clear()
            return count

    def rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [rule.to_json() for rule in self._rules]

    def take_immediate_expiry(self) -> bool:
        """Remove `expire_sessions` rules with nothing left to wait for; True if there were any."""
        with self._lock:
            due = [r for r in self._rules if r.kind == "expire_sessions" and r.after_calls == 0]
            self._rules = [r for r in self._rules if r not in due]
            return bool(due)

    def decide(self, method: str, path: str) -> FaultDecision:
        """Evaluate every rule against one request and consume the ones that fire."""
        decision = FaultDecision()
        with self._lock:
            spent: list[FaultRule] = []
            for rule in self._rules:
                if not rule.matches(method, path):
                    continue
                if rule.kind == "expire_sessions":
                    if rule.after_calls == 0:
                        decision.expire_sessions = True
                        decision.fired.append(rule.id)
                        spent.append(rule)
                    else:
                        rule.after_calls -= 1
                    continue
                if not self._fires(rule):
                    continue
                if rule.kind in ANSWERING_KINDS and decision.status is None:
                    decision.status = rule
                elif rule.kind == "drop":
                    decision.drop = True
                elif rule.kind == "latency":
                    decision.latency += rule.seconds
                else:
                    continue
                decision.fired.append(rule.id)
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        spent.append(rule)
            self._rules = [r for r in self._rules if r not in spent]
        return decision

    def _fires(self, rule: FaultRule) -> bool:
        if rule.probability is not None:
            return self._random.random() < rule.probability
        return (rule.remaining or 0) > 0
