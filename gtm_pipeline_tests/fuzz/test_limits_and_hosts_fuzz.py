"""Properties of what the connector reads from Salesforce's headers and of where it sends tokens.

- `parse_limit_info` never raises on any header text, and whatever else surrounds it, an
  `api-usage=U/L` element is read as exactly (U, L); no other element (bursts, per-app usage,
  junk) ever becomes the daily usage.
- `request_limit_kind` never takes a message that does not start with `TotalRequests` for the
  daily limit, nor one that does not start with `Concurrent` for a concurrency limit.
- The token-destination check (`salesforce/domains.py`) accepts an https URL only when its host
  is a DNS name strictly under a documented Salesforce domain with no user-info; any host built
  around a Salesforce name by an attacker (suffix appended, user-info, lookalike label) is refused.
- The callback URL's loopback test accepts plain http only for the exact loopback hosts.

Extends salesforce/test_limits.py, salesforce/test_oauth.py and test_config.py (listed cases) with
generated ones.
"""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from gtm_pipeline.config import ConfigError, callback_url
from gtm_pipeline.salesforce.domains import (
    SALESFORCE_DOMAIN_SUFFIXES,
    is_salesforce_host,
    plain_https_host,
)
from gtm_pipeline.salesforce.limits import RequestLimit, parse_limit_info, request_limit_kind
from gtm_pipeline_tests.fuzz.examples import ran
from gtm_pipeline_tests.fuzz.settings import fuzz

COUNTS = st.integers(min_value=0, max_value=10**9)
LABEL = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
OTHER_ELEMENTS = st.lists(
    st.one_of(
        st.builds("api-bursts={}/{}".format, COUNTS, COUNTS),
        st.builds("per-app-api-usage={}/{}(appName={})".format, COUNTS, COUNTS, LABEL),
        st.text(alphabet=st.characters(exclude_characters=";"), max_size=30),
    ),
    max_size=4,
)


@fuzz
@given(header=st.text(max_size=200))
def test_any_header_text_is_read_without_raising(header):
    ran("limits: any header")
    info = parse_limit_info(header)
    assert info.api_usage is None or info.api_usage.total >= 0


@fuzz
@given(used=COUNTS, total=COUNTS, others=OTHER_ELEMENTS, position=st.integers(0, 4))
def test_api_usage_is_read_exactly_wherever_it_stands(used, total, others, position):
    ran("limits: api-usage among others")
    elements = list(others)
    elements.insert(min(position, len(elements)), f"api-usage={used}/{total}")
    usage = parse_limit_info("; ".join(elements)).api_usage
    assert usage is not None and (usage.used, usage.total) == (used, total)


@fuzz
@given(others=OTHER_ELEMENTS)
def test_no_other_element_is_taken_for_the_daily_usage(others):
    ran("limits: no api-usage")
    assume(not any(e.strip().lower().startswith("api-usage=") for e in others))
    assert parse_limit_info("; ".join(others)).api_usage is None


@fuzz
@given(message=st.text(max_size=80))
def test_only_the_named_limits_are_read_as_daily_or_concurrency(message):
    ran("limits: refusal messages")
    kind = request_limit_kind(message)
    name = message.lstrip()
    if kind is RequestLimit.DAILY:
        assert name.startswith("TotalRequests")
    if kind is RequestLimit.CONCURRENCY:
        assert name.startswith("Concurrent")


@fuzz
@given(
    labels=st.lists(LABEL, min_size=1, max_size=3),
    suffix=st.sampled_from(SALESFORCE_DOMAIN_SUFFIXES),
)
def test_hosts_under_a_salesforce_domain_are_trusted(labels, suffix):
    ran("hosts: salesforce")
    host = ".".join([*labels, suffix])
    assert is_salesforce_host(host)
    assert plain_https_host(f"https://{host}/services") == host


@fuzz
@given(
    labels=st.lists(LABEL, min_size=1, max_size=3),
    suffix=st.sampled_from(SALESFORCE_DOMAIN_SUFFIXES),
    attacker=LABEL,
    trick=st.sampled_from(["appended", "user-info", "lookalike", "http"]),
)
def test_hosts_built_around_a_salesforce_name_are_refused(labels, suffix, attacker, trick):
    ran("hosts: attacker")
    salesforce = ".".join([*labels, suffix])
    url = {
        "appended": f"https://{salesforce}.{attacker}.example/",
        "user-info": f"https://{salesforce}@{attacker}.example/",
        "lookalike": f"https://{attacker}-{suffix}/",
        "http": f"http://{salesforce}/",
    }[trick]
    host = plain_https_host(url)
    assert host is None or not is_salesforce_host(host)


@fuzz
@given(
    host=st.one_of(
        st.builds("127.0.0.1.{}.example".format, LABEL),
        st.builds("127.0.0.1@{}.example".format, LABEL),
        st.builds("localhost.{}".format, LABEL),
        st.builds("{}.example".format, LABEL),
    )
)
def test_plain_http_callbacks_are_refused_off_loopback(host):
    ran("hosts: callback")
    try:
        callback_url({"SALESFORCE_CALLBACK_URL": f"http://{host}/cb"})
    except ConfigError:
        return
    raise AssertionError(f"http://{host}/cb was accepted")
