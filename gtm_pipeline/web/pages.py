"""Server-rendered pages: one Jinja2 environment with autoescape on for every template."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from starlette.responses import HTMLResponse

from gtm_pipeline.web.overview import STATUS_LABELS

TEMPLATES_DIR = Path(__file__).with_name("templates")
STATIC_DIR = Path(__file__).with_name("static")


def _when(value: datetime | None) -> str:
    if value is None:
        return "never"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _environment() -> jinja2.Environment:
    # select_autoescape would skip templates by extension; every template here is HTML.
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["when"] = _when
    # A tenant id placed in a URL path is one segment, whatever characters it holds.
    env.filters["path_segment"] = lambda value: quote(str(value), safe="")
    return env


_ENV = _environment()


def render(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("operator", None)
    return HTMLResponse(_ENV.get_template(template).render(**context), status_code=status_code)


def message_page(
    heading: str, message: str, status_code: int, operator: Any = None
) -> HTMLResponse:
    """A short page for a refusal or an error, in plain words."""
    return render("message.html", status_code, heading=heading, message=message, operator=operator)


def outcome_page(
    *,
    heading: str,
    ok: bool,
    http_status: int,
    message: str,
    tenant_id: str | None,
    status: str | None,
    operator: Any = None,
    back_link: bool = True,
) -> HTMLResponse:
    """The result of a connect or disconnect, for the person who clicked."""
    return render(
        "outcome.html",
        http_status,
        heading=heading,
        ok=ok,
        message=message,
        tenant_id=tenant_id,
        status=status,
        status_label=STATUS_LABELS.get(status, str(status)),
        operator=operator,
        back_link=back_link,
    )
