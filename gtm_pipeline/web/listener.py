"""A one-route app that waits for the OAuth callback, for `gtm-pipeline connect` in a terminal.

It serves only the callback path of SALESFORCE_CALLBACK_URL, shows the same result page as the
web app, and hands the outcome to the waiting command. Callbacks whose state does not verify get
their 400 page but do not end the wait: they belong to no flow this command started. Flows are
bound to the listener (`binding`, kept in memory), so it finishes only flows its command started.
"""

from __future__ import annotations

import threading

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gtm_pipeline.connect.flow import ConnectFlow, ConnectOutcome, FlowBinding
from gtm_pipeline.web.callback import finish_callback
from gtm_pipeline.web.guards import guarded_app, trusted_hosts


class CallbackListener:
    """Finishes the flow on the first verified callback and remembers its outcome."""

    def __init__(self, flow: ConnectFlow, path: str) -> None:
        self._flow = flow
        self._arrived = threading.Event()
        self._outcome: ConnectOutcome | None = None
        self.binding = FlowBinding.new(operator_id=None)  # start flows with this one
        self.app = guarded_app(
            [Route(path or "/", self._callback, methods=["GET"])],
            allowed_hosts=trusted_hosts(flow.callback_url),
        )

    async def _callback(self, request: Request) -> Response:
        page, outcome = await finish_callback(self._flow, request, self.binding, back_link=False)
        if outcome is not None and outcome.tenant_id is not None and not self._arrived.is_set():
            self._outcome = outcome
            self._arrived.set()
        return page

    def wait(self, timeout: float) -> ConnectOutcome | None:
        """The outcome of the first verified callback, or None if none came within `timeout`."""
        self._arrived.wait(timeout)
        return self._outcome
