"""CSRF tokens for the app's forms: one per session, compared in constant time.

Bearer-token API calls carry no ambient credential a third-party page could borrow, so only
cookie-authenticated requests need the form token.
"""

from __future__ import annotations

import hmac

CSRF_FIELD = "csrf_token"
MAX_TOKEN_CHARS = 256


def csrf_matches(expected: str | None, presented: object) -> bool:
    """True only when the form carried exactly the session's token."""
    if not expected or not isinstance(presented, str) or not presented:
        return False
    if len(presented) > MAX_TOKEN_CHARS or not presented.isascii():
        return False
    return hmac.compare_digest(expected.encode("ascii"), presented.encode("ascii"))
