"""Objects the integration user cannot read.

Salesforce answers a query on an object the user's profile cannot see with `INVALID_TYPE`
("sObject type 'Lead' is not supported", the code of a misspelt object too) and the object's
describe with 404 `NOT_FOUND`. An org whose integration user may not read Leads, Tasks or Events
still syncs its other objects: such an entity reads nothing and says why, and the change check
does not count it as a change, so an idle tenant stays idle.
"""

from __future__ import annotations

from gtm_pipeline.salesforce.client import SalesforceClient
from gtm_pipeline.salesforce.errors import SalesforceApiError

QUERY_REFUSED = "INVALID_TYPE"
DESCRIBE_NOT_FOUND = 404


def unreadable_reason(client: SalesforceClient, sf_object: str, error: BaseException) -> str | None:
    """Why `error`, raised by a query on `sf_object`, means the integration user may not read
    the object; None when it means anything else. The describe tells the two apart: it answers
    for an object the user may read (the query was refused for another reason, which is raised)
    and is 404 for one it may not. (An object name no org has looks the same; the entities'
    names are Salesforce's standard objects, so that would be this code's bug.)"""
    if not (isinstance(error, SalesforceApiError) and error.error_code == QUERY_REFUSED):
        return None
    try:
        client.describe(sf_object)
    except SalesforceApiError as exc:
        if exc.status == DESCRIBE_NOT_FOUND:
            return f"the integration user cannot read {sf_object} objects ({error.message})"
        raise
    return None
