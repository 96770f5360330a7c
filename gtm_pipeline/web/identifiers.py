"""What a tenant id or connector id typed into a form or a URL may look like.

Ids become part of the token encryption's associated data (`tenant:connector`), of URLs and of
log lines, so they are kept to a plain alphabet: no colon, no spaces, no markup.
"""

from __future__ import annotations

import re

from gtm_pipeline.errors import GtmError

TENANT_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
CONNECTOR_ID_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,63}")
DEFAULT_CONNECTOR_ID = "salesforce"


class InvalidIdentifier(GtmError, ValueError):
    """A tenant or connector id that does not fit its pattern; the message is safe to show."""

    retryable = False


def tenant_id(value: object) -> str:
    """`value` as a tenant id, or InvalidIdentifier saying what is allowed."""
    text = value.strip() if isinstance(value, str) else ""
    if not TENANT_ID_PATTERN.fullmatch(text):
        raise InvalidIdentifier(
            "a tenant id is 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return text


def connector_id(value: object) -> str:
    """`value` as a connector id (default "salesforce" when empty), or InvalidIdentifier."""
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        return DEFAULT_CONNECTOR_ID
    if not CONNECTOR_ID_PATTERN.fullmatch(text):
        raise InvalidIdentifier(
            "a connector id is 1 to 64 lowercase letters, digits, '_' or '-', "
            "starting with a letter"
        )
    return text
