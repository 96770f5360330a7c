"""Finishing the OAuth flow from Salesforce's redirect: shared by the web app and `connect`."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from gtm_pipeline.connect.flow import ConnectFlow, ConnectOutcome, FlowBinding
from gtm_pipeline.web.pages import message_page, outcome_page


async def finish_callback(
    flow: ConnectFlow, request: Request, presented: FlowBinding, *, back_link: bool = True
) -> tuple[Response, ConnectOutcome | None]:
    """The page to show for a callback, and the flow's outcome (None when it never ran).

    `presented` is who the request is (its binding cookie and operator, or the listener's own
    binding); the flow finishes only for the one that started it.
    """
    items = request.query_params.multi_items()
    params = dict(items)
    if len(params) != len(items):
        page = message_page(
            "Salesforce was not connected",
            "The link carried a parameter twice; start the connection again.",
            400,
        )
        return page, None
    outcome = await run_in_threadpool(flow.finish, params, presented)
    page = outcome_page(
        heading="Salesforce connected" if outcome.ok else "Salesforce was not connected",
        ok=outcome.ok,
        http_status=outcome.http_status,
        message=outcome.message,
        tenant_id=outcome.tenant_id,
        status=outcome.status,
        back_link=back_link,
    )
    return page, outcome
