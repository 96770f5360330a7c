"""The guards in front of every route (web/guards.py), on a one-route app over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from gtm_pipeline.web.guards import (
    MAX_FORM_FIELD_BYTES,
    MAX_REQUEST_BODY_BYTES,
    guarded_app,
    read_form,
    trusted_hosts,
)
from gtm_pipeline.web.serving import BackgroundServer

MAX_FIELDS = 3


async def _count_fields(request: Request) -> Response:
    form = await read_form(request, max_fields=MAX_FIELDS)
    return PlainTextResponse(str(len(form.multi_items())))


async def _body_length(request: Request) -> Response:
    return PlainTextResponse(str(len(await request.body())))


@pytest.fixture()
def base_url() -> Iterator[str]:
    app = guarded_app(
        [
            Route("/form", _count_fields, methods=["POST"]),
            Route("/body", _body_length, methods=["POST"]),
        ],
        allowed_hosts=trusted_hosts("https://connect.example.com/cb"),
    )
    with BackgroundServer(app) as server:
        yield server.base_url


@pytest.fixture()
def form_url(base_url: str) -> str:
    return base_url + "/form"


def test_trusted_hosts_are_the_callbacks_host_and_loopback():
    assert trusted_hosts("https://Connect.Example.com:8443/cb") == [
        "127.0.0.1",
        "[::1]",
        "connect.example.com",
        "localhost",
    ]
    assert trusted_hosts("http://[::1]:8765/cb") == ["127.0.0.1", "[::1]", "localhost"]


@pytest.mark.parametrize(
    ("data", "status"),
    [
        ({"a": "x" * (MAX_FORM_FIELD_BYTES - 1)}, 200),
        ({"a": "x" * (MAX_FORM_FIELD_BYTES + 1)}, 400),
        ({"a": "1", "b": "2", "c": "3"}, 200),
        ({"a": "1", "b": "2", "c": "3", "d": "4"}, 400),
    ],
)
def test_read_form_bounds_each_field_and_the_field_count(form_url, data, status):
    assert requests.post(form_url, data=data, timeout=30).status_code == status
    multipart = {name: (None, value) for name, value in data.items()}
    assert requests.post(form_url, files=multipart, timeout=30).status_code == status


def test_a_urlencoded_field_name_counts_toward_the_field_limit(form_url):
    data = {"x" * MAX_FORM_FIELD_BYTES: "1"}
    assert requests.post(form_url, data=data, timeout=30).status_code == 400


def test_read_form_takes_no_files(form_url):
    upload = {"a": ("a.txt", b"hello", "text/plain")}
    assert requests.post(form_url, files=upload, timeout=30).status_code == 400


def test_a_body_over_the_total_is_413_whether_announced_or_streamed(base_url):
    url = base_url + "/body"
    most = b"x" * MAX_REQUEST_BODY_BYTES
    assert requests.post(url, data=most, timeout=30).text == str(MAX_REQUEST_BODY_BYTES)
    assert requests.post(url, data=most + b"x", timeout=30).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        yield most
        yield b"x"

    streamed = requests.post(url, data=chunks(), timeout=30)
    assert streamed.request.headers.get("Transfer-Encoding") == "chunked"
    assert streamed.status_code == 413
