"""The server's pure pieces: PKCE, signatures, batch-size parsing, page sizes, fault plans."""

from __future__ import annotations

import pytest

from gtm_pipeline.emulator.errors import EmulatorError
from gtm_pipeline.emulator.faults import FaultPlan
from gtm_pipeline.emulator.oauth_server import pkce_challenge, token_signature
from gtm_pipeline.emulator.paging import PageSizePolicy, batch_size_from_header


def test_pkce_challenge_matches_the_rfc_7636_example() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_token_signature_is_base64_hmac_of_id_and_issued_at() -> None:
    # HMAC-SHA256(key="key", msg="The quick brown fox jumps over the lazy dog"), base64.
    signed = token_signature("The quick brown fox ", "jumps over the lazy dog", "key")
    assert signed == "97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNg="


@pytest.mark.parametrize(
    ("header", "size"),
    [
        (None, 2000),
        ("", 2000),
        ("batchSize=500", 500),
        ("batchSize=1", 200),
        ("batchSize=99999", 2000),
        ("foo=bar, BatchSize = 300", 300),
        ("foo=bar", 2000),
    ],
)
def test_batch_size_from_header(header, size: int) -> None:
    assert batch_size_from_header(header) == size


def test_batch_size_that_is_not_a_number_is_an_error() -> None:
    with pytest.raises(EmulatorError) as caught:
        batch_size_from_header("batchSize=-5")
    assert caught.value.status == 400


def test_random_page_sizes_are_stable_per_cursor_and_offset() -> None:
    policy = PageSizePolicy.from_json({"mode": "random", "seed": 9, "minimum": 20})
    sizes = [policy.page_size(300, cursor, start) for cursor in range(5) for start in (0, 300)]
    assert all(20 <= size <= 300 for size in sizes)
    assert len(set(sizes)) > 3
    again = [policy.page_size(300, cursor, start) for cursor in range(5) for start in (0, 300)]
    assert sizes == again
    assert PageSizePolicy.from_json(7).page_size(2000, 1, 0) == 7
    assert PageSizePolicy.from_json(None).page_size(650, 1, 0) == 650


def test_fault_plan_counts_down_and_forgets_spent_rules() -> None:
    plan = FaultPlan(seed=1)
    plan.add([{"kind": "status", "status": 503, "times": 2, "path": "^/a"}])
    plan.add([{"kind": "latency", "seconds": 0.5, "times": 1}])
    first = plan.decide("GET", "/a")
    assert first.status is not None and first.latency == 0
    data = plan.decide("GET", "/services/data/v59.0/query")
    assert data.status is None and data.latency == 0.5
    assert plan.decide("GET", "/a").status is not None
    assert plan.decide("GET", "/a").status is None
    assert plan.rules() == []


def test_fault_plan_expire_after_calls() -> None:
    plan = FaultPlan()
    plan.add([{"kind": "expire_sessions", "after_calls": 1}, {"kind": "expire_sessions"}])
    assert plan.take_immediate_expiry() is True
    assert [plan.decide("GET", "/services/data/v1.0/x").expire_sessions for _ in range(3)] == [
        False,
        True,
        False,
    ]
