"""Which URLs belong to Salesforce: the check that keeps an access token from going elsewhere.

A token response names the `instance_url` every later API call (and so the access token) goes
to, and the identity URL (`id`). Its signature only proves that someone holding the client
secret produced it, and a wrong SALESFORCE_LOGIN_URL (a typo, a lookalike host) would be that
someone's server. So both URLs must be https, carry no user-info, and have a host under one of
the domains Salesforce documents for org URLs:

- `salesforce.com`: login.salesforce.com, test.salesforce.com, instance URLs such as
  na1.salesforce.com, and My Domain URLs in all their documented forms
  (MyDomainName.my.salesforce.com, MyDomainName--SandboxName.sandbox.my.salesforce.com,
  MyDomainName.develop.my.salesforce.com, ...);
- `force.com`: the Lightning, Visualforce and content hosts (*.lightning.force.com, ...);
- `cloudforce.com`: the CloudforceLimited My Domain suffix (OrgDomainLog.ProdSuffixType).

- `salesforce.mil`: trusted because the project's requirements (issue 19) list it for orgs on
  the US government's military cloud; no Salesforce page reachable here documents it.

An org on any other suffix sets SALESFORCE_ALLOW_ANY_INSTANCE=1, as the emulator does.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from gtm_pipeline.config import plain_host

SALESFORCE_DOMAIN_SUFFIXES = ("salesforce.com", "force.com", "cloudforce.com", "salesforce.mil")
# Letters, digits and hyphens in dot-separated labels: anything else in a host (a backslash, a
# percent sign) is where URL parsers disagree, and no Salesforce host has it.
_DNS_NAME = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")


def is_salesforce_host(host: str) -> bool:
    """Whether `host` is a DNS name strictly under one of Salesforce's documented domains."""
    host = host.lower()
    if not _DNS_NAME.fullmatch(host):
        return False
    return any(host.endswith("." + suffix) for suffix in SALESFORCE_DOMAIN_SUFFIXES)


def plain_https_host(url: str, *, path_allowed: bool = True) -> str | None:
    """The host of a plain https URL, else None.

    Plain: an authority of just host[:port] (no user-info), no query or fragment, no whitespace
    or control characters (urlsplit drops tabs and newlines that urllib3 keeps, so the checker
    and the sender would read two different URLs), and a path only when `path_allowed` (an
    identity URL has one; an instance URL is the bare origin).
    """
    if not url.isprintable() or any(character.isspace() for character in url):
        return None
    parts = urlsplit(url)
    if parts.scheme != "https" or "?" in url or "#" in url:
        return None
    if not path_allowed and parts.path not in ("", "/"):
        return None
    return plain_host(url)
