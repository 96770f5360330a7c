"""The attack suite's helpers: the served app with clients whose every page is secret-scanned,
and a snapshot of the whole store."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from starlette.applications import Starlette

from gtm_pipeline.store.tables import metadata as store_metadata
from gtm_pipeline_tests.secret_scan import record_text, secrets_in
from gtm_pipeline_tests.support.web import AppClient, csrf_from


class ScannedClient(AppClient):
    """An AppClient that adds every response body to the secret scan and fails on a secret."""

    def request(self, method, url, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        answer = super().request(method, url, *args, **kwargs)
        text = answer.text
        record_text(f"page {method} {answer.url} -> {answer.status_code}", text)
        found = secrets_in(text)
        assert not found, f"{method} {url} answered with secrets: {found}"
        return answer


@dataclass
class WebApp:
    """The app object (for its route table) and where it is served."""

    app: Starlette
    base_url: str

    def client(self, token: str | None = None, *, html: bool = False) -> ScannedClient:
        return ScannedClient(self.base_url, token=token, html=html)

    def login(self, token: str) -> ScannedClient:
        """A browser-like client logged in through the form."""
        browser = self.client(html=True)
        page = browser.get("/login")
        answer = browser.post("/login", data={"token": token, "csrf_token": csrf_from(page.text)})
        assert answer.status_code == 303, answer.text
        return browser


def snapshot(engine: sa.Engine) -> dict[str, list[tuple]]:
    """Every row of every store table, in a stable order: "nothing changed" means equal."""
    with engine.connect() as conn:
        return {
            table.name: sorted(
                (tuple(map(repr, row)) for row in conn.execute(sa.select(table))), key=repr
            )
            for table in store_metadata.sorted_tables
        }
