"""The generated org's Leads, Tasks and Events, added after (and never disturbing) the rest.

`generate.generate` builds Accounts, Contacts and Opportunities from the seed's random stream.
This module adds the objects whose counts default to 0, each from a random stream of its own
derived from the seed, so a seed gives byte-identical Accounts, Contacts and Opportunities
whether or not Leads, Tasks and Events are asked for. Rows are built the way `generate` builds
them: straight into stored tuples, repeated values (stamps, dates, picklist values, the Ids
activities point at) sharing one object, so a million Tasks stay within memory.

Adversarial on purpose:
    - a share of Leads is converted: IsConverted, ConvertedDate and references to an existing
      Contact (whose names, email, title and phone the Lead carries, as conversion copies them),
      its Account and sometimes one of its Opportunities;
    - some unconverted Leads share an email with a Contact or with another Lead, sometimes in
      another case: twins, which are not dirt;
    - activities older than about a year before HISTORY_END are archived (Events by
      EndDateTime, closed Tasks by ActivityDate), so plain queries do not return them;
    - a `dirty_ratio` share of records carries one kind of dirt each (`LEAD_ACTIVITY_DIRTY_KINDS`
      plus served-twice duplicates), named in the row's hidden dirty slot.
"""

from __future__ import annotations

import calendar
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from gtm_pipeline.emulator.generate import (
    COMPANY_HEADS,
    COMPANY_SUFFIXES,
    COMPANY_TAILS,
    COUNTRY_REGION,
    DAY,
    FIRST_NAMES,
    HISTORY_END,
    HISTORY_SPAN,
    LAST_NAMES,
    NON_LATIN_COMPANIES,
    NON_LATIN_NAMES,
    PLACES,
    STREETS,
    TITLES,
    TLDS,
    GeneratedOrg,
    _Builder,
    _common,
    _long_text,
    _padded,
    format_day,
    sequence_base,
)
from gtm_pipeline.emulator.ids import KEY_PREFIXES, make_id, make_ids
from gtm_pipeline.emulator.record_rules import CONTACT_FROM_LEAD
from gtm_pipeline.emulator.schema import (
    CALL_TYPES,
    CONVERTED_LEAD_STATUS,
    INDUSTRIES,
    LEAD_SOURCES,
    LEAD_STATUSES,
    PRIORITIES,
    ObjectDef,
)

# The objects this module generates and their default counts (none unless asked for).
LEAD_ACTIVITY_COUNTS = {"Lead": 0, "Task": 0, "Event": 0}
LEAD_ACTIVITY_DIRTY_KINDS: dict[str, tuple[str, ...]] = {
    "Lead": ("missing_required", "malformed_email", "padded_string", "long_string", "non_latin"),
    "Task": ("missing_dates", "negative_duration", "absurd_duration", "dangling_who",
             "padded_string"),
    "Event": ("missing_dates", "negative_duration", "absurd_duration", "dangling_who",
              "padded_string"),
}  # fmt: skip

# "About a year" (the reference): activities that ended, or closed Tasks due, before this are
# archived. The exact age is the emulator's choice.
ARCHIVE_BEFORE = HISTORY_END - 365 * DAY
CONVERTED_SHARE = 0.15
CONTACT_TWIN_SHARE = 0.02
LEAD_TWIN_SHARE = 0.01
DANGLING_POOL = 25

OPEN_LEAD_STATUSES = tuple(s for s in LEAD_STATUSES if s != CONVERTED_LEAD_STATUS)
MALFORMED_EMAILS: tuple[Callable[[str, str], str], ...] = (
    lambda local, domain: f"{local}@",
    lambda local, domain: f"{local}.{domain}",
    lambda local, domain: f"{local} @{domain}",
    lambda local, domain: f"{local}@@{domain}",
    lambda local, domain: f"{local}@{domain.split('.', 1)[0]}",
)
TASK_SUBJECTS_BY_SUBTYPE = {
    "Task": ("Send Quote", "Send Letter", "Follow up", "Prepare proposal", "Other"),
    "Email": ("Email: Intro", "Email: Re: pricing", "Email: Follow-up", "Email: Contract draft"),
    "ListEmail": ("List Email: Product update", "List Email: Webinar invite"),
    "Cadence": ("Cadence step: Call", "Cadence step: Email"),
    "Call": ("Call", "Discovery call", "Follow-up call", "Left voicemail"),
    "LinkedIn": ("LinkedIn: Connection request", "LinkedIn: InMail"),
}
# Logged emails and calls are nearly always saved completed; to-dos often stay open.
LOGGED_SUBTYPES = frozenset({"Email", "ListEmail", "Call", "LinkedIn"})
OPEN_TASK_STATUSES = ("Not Started", "In Progress", "Waiting on someone else", "Deferred")
EVENT_SUBJECTS_BY_TYPE = {
    "Meeting": ("Meeting", "Demo", "Discovery meeting", "Quarterly business review", "Onsite"),
    "Call": ("Call", "Pricing call"),
    "Email": ("Email",),
    "Other": ("Lunch", "Conference", "Other"),
}
LOCATIONS = ("Zoom", "Google Meet", "Microsoft Teams", "Customer office", "Our office", None)
MEETING_MINUTES = (15, 30, 30, 45, 60, 60, 60, 90, 120)
QUARTER_HOUR = 900

Weighted = tuple[tuple[float, object], ...]
T = TypeVar("T")


def _weights(pairs: Mapping[object, float]) -> Weighted:
    """Cumulative thresholds for `_weighted`: one random number picks one value."""
    total = sum(pairs.values())
    out, running = [], 0.0
    for value, weight in pairs.items():
        running += weight / total
        out.append((running, value))
    return tuple(out)


TASK_SUBTYPE_WEIGHTS = _weights(
    {"Task": 35, "Email": 30, "Call": 25, "ListEmail": 5, "LinkedIn": 3, "Cadence": 2}
)
PRIORITY_WEIGHTS = _weights(dict(zip(PRIORITIES, (15, 75, 10), strict=True)))
CALL_TYPE_WEIGHTS = _weights(dict(zip(CALL_TYPES, (5, 25, 70), strict=True)))
EVENT_TYPE_WEIGHTS = _weights({"Meeting": 75, "Call": 12, "Email": 5, "Other": 8})
OPEN_LEAD_WEIGHTS = _weights(dict(zip(OPEN_LEAD_STATUSES, (45, 35, 20), strict=True)))


def _weighted(rand: Callable[[], float], table: Weighted) -> object:
    r = rand()
    for threshold, value in table:
        if r < threshold:
            return value
    return table[-1][1]


def _choose(rand: Callable[[], float], values: Sequence[T]) -> T:
    return values[int(rand() * len(values))]


def _epoch(stamp: str) -> int:
    """Seconds of a stored `YYYY-MM-DDTHH:MM:SS.000+0000` stamp."""
    return calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))


class _Days:
    """Interned `YYYY-MM-DD` strings: a million activities share about a thousand dates."""

    def __init__(self) -> None:
        self._cache: dict[int, str] = {}

    def __call__(self, epoch_seconds: int) -> str:
        key = epoch_seconds // DAY
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = format_day(key * DAY)
        return found


@dataclass
class _Refs:
    """The records Leads and activities point at, read from the tables already generated."""

    objects: Mapping[str, ObjectDef]
    tables: Mapping[str, Mapping[str, tuple]]
    contact_ids: list[str]
    contact_accounts: list[str | None]
    account_ids: list[str]
    opportunity_ids: list[str]
    opportunity_accounts: list[str | None]
    opportunities_by_account: dict[str, list[str]]
    dangling_ids: list[str]
    lead_ids: list[str] = field(default_factory=list)

    @classmethod
    def read(
        cls, objects: Mapping[str, ObjectDef], tables: Mapping[str, Mapping[str, tuple]], base: int
    ) -> _Refs:
        contact_account = objects["Contact"].slots["AccountId"]
        opportunity_account = objects["Opportunity"].slots["AccountId"]
        by_account: dict[str, list[str]] = {}
        for rid, row in tables["Opportunity"].items():
            if row[opportunity_account] is not None:
                by_account.setdefault(row[opportunity_account], []).append(rid)
        return cls(
            objects=objects,
            tables=tables,
            contact_ids=list(tables["Contact"]),
            contact_accounts=[row[contact_account] for row in tables["Contact"].values()],
            account_ids=list(tables["Account"]),
            opportunity_ids=list(tables["Opportunity"]),
            opportunity_accounts=[
                row[opportunity_account] for row in tables["Opportunity"].values()
            ],
            opportunities_by_account=by_account,
            dangling_ids=_dangling_ids(base),
        )


def _dangling_ids(base: int) -> list[str]:
    """Contact and Lead Ids this org never mints (sequence numbers below its base): what a
    reference to a record deleted and purged before the generated history looks like."""
    return [
        make_id(KEY_PREFIXES[name], base - 1 - k)
        for name in ("Contact", "Lead")
        for k in range(DANGLING_POOL)
    ]


def add_leads_and_activities(
    objects: Mapping[str, ObjectDef],
    generated: GeneratedOrg,
    *,
    seed: int,
    counts: Mapping[str, int],
    dirty_ratio: float,
) -> None:
    """Add the Lead, Task and Event tables (empty for a count of 0) to a generated org.

    Reads the Accounts, Contacts and Opportunities already there and never changes them.
    """
    base = sequence_base(seed)
    refs = _Refs.read(objects, generated.tables, base)
    leads = _leads(_builder(seed, dirty_ratio, "Lead"), objects["Lead"], counts["Lead"], base, refs)
    refs.lead_ids = list(leads)
    tasks = _tasks(_builder(seed, dirty_ratio, "Task"), objects["Task"], counts["Task"], base, refs)
    events = _events(
        _builder(seed, dirty_ratio, "Event"), objects["Event"], counts["Event"], base, refs
    )
    generated.tables.update({"Lead": leads, "Task": tasks, "Event": events})
    for name in LEAD_ACTIVITY_COUNTS:
        generated.next_sequence[name] = base + counts[name]


def _builder(seed: int, dirty_ratio: float, sobject: str) -> _Builder:
    """A builder with the object's own stream: another object's count never changes its rows."""
    return _Builder(seed, dirty_ratio, rng=random.Random(f"{sobject}:{seed}"))


# --- Leads -----------------------------------------------------------------------------------


@dataclass
class _LeadEmails:
    """Emails already given, so clean Leads are unique unless made twins on purpose."""

    seen: set[str] = field(default_factory=set)
    contact_emails: list[str] = field(default_factory=list)
    lead_emails: list[str] = field(default_factory=list)


def _leads(b: _Builder, obj: ObjectDef, n: int, base: int, refs: _Refs) -> dict[str, tuple]:
    rand = b.rng.random
    created, modified, system = b.timeline(n)
    plan = b.dirty_plan(n, LEAD_ACTIVITY_DIRTY_KINDS["Lead"])
    ids = make_ids(obj.key_prefix, base, n)
    donors = _conversion_donors(refs)
    emails = _LeadEmails(contact_emails=_clean_contact_emails(refs))
    table: dict[str, tuple] = {}
    for i in range(n):
        row: list = [None] * (obj.dirty_slot + 1)
        kind = plan.get(i)
        if kind is None and donors and rand() < CONVERTED_SHARE:
            times, region = _converted_lead(b, row, obj, refs, _choose(rand, donors), created[i])
        else:
            times, region = (created[i], modified[i], system[i]), _open_lead(b, row, obj)
            if kind is None:
                _maybe_twin(rand, row, obj, emails)
            else:
                _dirty_lead(b.rng, row, obj.slots, kind)
                row[obj.dirty_slot] = kind
        _common(b, row, obj, ids[i], times, region)
        table[ids[i]] = tuple(row)
    return table


def _conversion_donors(refs: _Refs) -> list[int]:
    """Contacts a converted Lead may have become: clean ones at a clean Account if there are
    any, else clean ones, else any (an org without Contacts converts no Lead)."""
    contacts = refs.tables["Contact"]
    accounts = refs.tables["Account"]
    contact_dirt = refs.objects["Contact"].dirty_slot
    account_dirt = refs.objects["Account"].dirty_slot
    clean = [k for k, row in enumerate(contacts.values()) if row[contact_dirt] is None]
    placed = [
        k
        for k in clean
        if (account := refs.contact_accounts[k]) is not None
        and accounts[account][account_dirt] is None
    ]
    return placed or clean or list(range(len(contacts)))


def _clean_contact_emails(refs: _Refs) -> list[str]:
    slots = refs.objects["Contact"].slots
    dirt = refs.objects["Contact"].dirty_slot
    return [
        row[slots["Email"]]
        for row in refs.tables["Contact"].values()
        if row[dirt] is None and row[slots["Email"]]
    ]


def _open_lead(b: _Builder, row: list, obj: ObjectDef) -> str:
    """Fill an unconverted Lead with a prospect at a company of its own; returns its region."""
    rand, s = b.rng.random, obj.slots
    first, last = _choose(rand, FIRST_NAMES), _choose(rand, LAST_NAMES)
    head, tail = _choose(rand, COMPANY_HEADS), _choose(rand, COMPANY_TAILS)
    domain = f"{head}{tail}".lower().replace(" ", "") + _choose(rand, TLDS)
    city, state, postal, country = _choose(rand, PLACES)
    row[s["FirstName"]] = first
    row[s["LastName"]] = last
    row[s["Company"]] = f"{head} {tail}{_choose(rand, COMPANY_SUFFIXES)}"
    row[s["Email"]] = f"{first}.{last}@{domain}".lower()
    row[s["Title"]] = _choose(rand, TITLES)
    row[s["Phone"]] = f"+1 ({200 + int(rand() * 790)}) 555-{int(rand() * 10000):04d}"
    row[s["Street"]] = f"{1 + int(rand() * 9999)} {_choose(rand, STREETS)}"
    row[s["City"]], row[s["State"]], row[s["Country"]] = city, state, country
    row[s["PostalCode"]] = f"{postal}{int(rand() * 100):02d}"
    row[s["LeadSource"]] = _choose(rand, LEAD_SOURCES)
    row[s["Status"]] = _weighted(rand, OPEN_LEAD_WEIGHTS)
    row[s["Industry"]] = _choose(rand, INDUSTRIES)
    row[s["IsConverted"]] = False
    return COUNTRY_REGION[country]


def _maybe_twin(rand: Callable[[], float], row: list, obj: ObjectDef, emails: _LeadEmails) -> None:
    """Give a clean Lead the email of a Contact or of an earlier Lead now and then, sometimes
    in another case; otherwise keep its own (made unique) and offer it to later twins."""
    slot = obj.slots["Email"]
    r = rand()
    if r < CONTACT_TWIN_SHARE and emails.contact_emails:
        row[slot] = _recased(rand, _choose(rand, emails.contact_emails))
        return
    if r < CONTACT_TWIN_SHARE + LEAD_TWIN_SHARE and emails.lead_emails:
        row[slot] = _recased(rand, _choose(rand, emails.lead_emails))
        return
    email = row[slot]
    while email in emails.seen:
        email = row[slot] = email.replace("@", f".{len(emails.seen)}@", 1)
    emails.seen.add(email)
    emails.lead_emails.append(email)


def _recased(rand: Callable[[], float], email: str) -> str:
    """The same address as typed by someone else: as is, capitalised, or shouted."""
    r = rand()
    if r < 0.5:
        return email
    if r < 0.75:
        local, _, domain = email.partition("@")
        return ".".join(part.capitalize() for part in local.split(".")) + "@" + domain
    return email.upper()


def _converted_lead(
    b: _Builder, row: list, obj: ObjectDef, refs: _Refs, donor: int, created_at: int
) -> tuple[tuple[int, int, int], str | None]:
    """Fill a Lead converted into Contact `donor`: the person's fields come from the Contact,
    the company from its Account; conversion moved the stamps. Returns (stamps, region)."""
    rng, s = b.rng, obj.slots
    contact_id = refs.contact_ids[donor]
    contact = refs.tables["Contact"][contact_id]
    cs = refs.objects["Contact"].slots
    for contact_field, lead_field in CONTACT_FROM_LEAD:  # conversion in reverse
        row[s[lead_field]] = contact[cs[contact_field]]
    account_id = refs.contact_accounts[donor]
    if account_id is not None:
        account = refs.tables["Account"][account_id]
        slots = refs.objects["Account"].slots
        row[s["Company"]] = account[slots["Name"]]
        row[s["Industry"]] = account[slots["Industry"]]
    moment = rng.randint(max(created_at, _epoch(contact[cs["CreatedDate"]])), HISTORY_END - 60)
    row[s["Status"]] = CONVERTED_LEAD_STATUS
    row[s["IsConverted"]] = True
    row[s["ConvertedDate"]] = format_day(moment)
    row[s["ConvertedContactId"]] = contact_id
    row[s["ConvertedAccountId"]] = account_id
    opportunities = refs.opportunities_by_account.get(account_id or "")
    if opportunities and rng.random() < 0.4:
        row[s["ConvertedOpportunityId"]] = _choose(rng.random, opportunities)
    return (created_at, moment, moment), contact[cs["Region__c"]]


def _dirty_lead(rng: random.Random, row: list, s: Mapping[str, int], kind: str) -> None:
    if kind == "missing_required":
        row[s["LastName"]] = None
        row[s["Email"]] = None
        if rng.random() < 0.5:
            row[s["Company"]] = None
    elif kind == "malformed_email":
        local, _, domain = row[s["Email"]].partition("@")
        row[s["Email"]] = _choose(rng.random, MALFORMED_EMAILS)(local, domain)
    elif kind == "padded_string":
        name = _choose(rng.random, ("Email", "FirstName", "Company"))
        row[s[name]] = _padded(row[s[name]], rng)
    elif kind == "long_string":
        row[s["Title"]] = _long_text(rng, row[s["Title"]] or "Head of Revenue Operations")
    elif kind == "non_latin":
        last, first = _choose(rng.random, NON_LATIN_NAMES)
        row[s["LastName"]], row[s["FirstName"]] = last, first
        row[s["Company"]] = _choose(rng.random, NON_LATIN_COMPANIES)


# --- Tasks and Events ------------------------------------------------------------------------


def _links(rand: Callable[[], float], refs: _Refs) -> tuple[str | None, str | None, str | None]:
    """(WhoId, WhatId, AccountId) of one activity. AccountId is what Salesforce derives: the
    What's account (an Account itself, an Opportunity's account), else the Who contact's. A Lead
    Who takes no What; some activities name neither."""
    r = rand()
    if r < 0.55 and refs.contact_ids:
        k = int(rand() * len(refs.contact_ids))
        who, account = refs.contact_ids[k], refs.contact_accounts[k]
        if account is None:
            return who, None, None
        r = rand()
        if r < 0.35:
            return who, account, account
        opportunities = refs.opportunities_by_account.get(account)
        if opportunities and r < 0.6:
            return who, opportunities[int(rand() * len(opportunities))], account
        return who, None, account
    if r < 0.8 and refs.lead_ids:
        return refs.lead_ids[int(rand() * len(refs.lead_ids))], None, None
    if r < 0.92:
        if rand() < 0.5 and refs.account_ids:
            what = refs.account_ids[int(rand() * len(refs.account_ids))]
            return None, what, what
        if refs.opportunity_ids:
            k = int(rand() * len(refs.opportunity_ids))
            return None, refs.opportunity_ids[k], refs.opportunity_accounts[k]
    return None, None, None


def _happened(rng: random.Random, created: list[int], i: int) -> int:
    """When activity i took place: when it was created, unless it arrived in a bulk import (a
    clump created in one second), which brings activities from any earlier time along."""
    c = created[i]
    imported = (i > 0 and created[i - 1] == c) or (i + 1 < len(created) and created[i + 1] == c)
    return rng.randint(HISTORY_END - HISTORY_SPAN, c) if imported else c


def _set_links(row: list, s: Mapping[str, int], links: tuple) -> None:
    row[s["WhoId"]], row[s["WhatId"]], row[s["AccountId"]] = links


def _activity_times(b: _Builder, row: list, s: Mapping[str, int], rid: str, times: tuple) -> None:
    created, modified, system = times
    row[0] = rid
    row[1] = False
    row[s["CreatedDate"]] = b.stamp(created)
    row[s["LastModifiedDate"]] = b.stamp(modified)
    row[s["SystemModstamp"]] = b.stamp(system)


def _tasks(b: _Builder, obj: ObjectDef, n: int, base: int, refs: _Refs) -> dict[str, tuple]:
    rand = b.rng.random
    s = obj.slots
    created, modified, system = b.timeline(n)
    plan = b.dirty_plan(n, LEAD_ACTIVITY_DIRTY_KINDS["Task"])
    ids = make_ids(obj.key_prefix, base, n)
    day = _Days()
    durations: dict[int, int] = {}
    archive_day = format_day(ARCHIVE_BEFORE)
    table: dict[str, tuple] = {}
    width = obj.dirty_slot + 1
    for i in range(n):
        row: list = [None] * width
        happened, m = _happened(b.rng, created, i), modified[i]
        _activity_times(b, row, s, ids[i], (created[i], m, system[i]))
        _set_links(row, s, _links(rand, refs))
        subtype = str(_weighted(rand, TASK_SUBTYPE_WEIGHTS))
        closed = rand() < (0.95 if subtype in LOGGED_SUBTYPES else 0.6)
        row[s["TaskSubtype"]] = subtype
        row[s["Subject"]] = _choose(rand, TASK_SUBJECTS_BY_SUBTYPE[subtype])
        row[s["Priority"]] = _weighted(rand, PRIORITY_WEIGHTS)
        row[s["IsClosed"]] = closed
        if closed:
            # Saved closed at its last modification: a logged call or email is closed at once.
            row[s["Status"]] = "Completed"
            row[s["CompletedDateTime"]] = row[s["LastModifiedDate"]]
            row[s["ActivityDate"]] = day(happened + int(rand() * (m - happened + 1)))
        else:
            row[s["Status"]] = _choose(rand, OPEN_TASK_STATUSES)
            if rand() < 0.6:
                row[s["ActivityDate"]] = day(happened + int(rand() * 45) * DAY)
        if subtype == "Call":
            seconds = int(b.rng.lognormvariate(5, 0.9)) + 5
            row[s["CallDurationInSeconds"]] = durations.setdefault(seconds, seconds)
            row[s["CallType"]] = _weighted(rand, CALL_TYPE_WEIGHTS)
        kind = plan.get(i)
        if kind is not None:
            _dirty_task(b.rng, row, s, kind, refs)
            row[obj.dirty_slot] = kind
        due = row[s["ActivityDate"]]
        row[s["IsArchived"]] = bool(row[s["IsClosed"]] and due is not None and due < archive_day)
        table[ids[i]] = tuple(row)
    return table


def _dirty_task(
    rng: random.Random, row: list, s: Mapping[str, int], kind: str, refs: _Refs
) -> None:
    if kind == "missing_dates":
        # Closed before CompletedDateTime existed (API 48.0) and never given a due date.
        row[s["Status"]], row[s["IsClosed"]] = "Completed", True
        row[s["ActivityDate"]] = row[s["CompletedDateTime"]] = None
    elif kind in ("negative_duration", "absurd_duration"):
        row[s["TaskSubtype"]], row[s["Subject"]], row[s["CallType"]] = "Call", "Call", "Outbound"
        row[s["CallDurationInSeconds"]] = (
            rng.randint(3 * DAY, 400 * DAY) if kind == "absurd_duration" else -rng.randint(1, 3600)
        )
    elif kind == "dangling_who":
        _set_links(row, s, (_choose(rng.random, refs.dangling_ids), None, None))
    elif kind == "padded_string":
        row[s["Subject"]] = _padded(row[s["Subject"]], rng)


def _events(b: _Builder, obj: ObjectDef, n: int, base: int, refs: _Refs) -> dict[str, tuple]:
    rng = b.rng
    rand = rng.random
    s = obj.slots
    created, modified, system = b.timeline(n)
    plan = b.dirty_plan(n, LEAD_ACTIVITY_DIRTY_KINDS["Event"])
    ids = make_ids(obj.key_prefix, base, n)
    day = _Days()
    table: dict[str, tuple] = {}
    width = obj.dirty_slot + 1
    for i in range(n):
        row: list = [None] * width
        _activity_times(b, row, s, ids[i], (created[i], modified[i], system[i]))
        _set_links(row, s, _links(rand, refs))
        kind_of_event = str(_weighted(rand, EVENT_TYPE_WEIGHTS))
        # Meetings are often logged after they happened, or booked weeks ahead.
        happened = _happened(rng, created, i) + rng.randint(-7 * DAY, 30 * DAY)
        start = happened // QUARTER_HOUR * QUARTER_HOUR
        minutes = _choose(rand, MEETING_MINUTES)
        row[s["Type"]] = kind_of_event
        row[s["EventSubtype"]] = "Event"
        row[s["Subject"]] = _choose(rand, EVENT_SUBJECTS_BY_TYPE[kind_of_event])
        row[s["Location"]] = _choose(rand, LOCATIONS)
        kind = plan.get(i)
        if kind in ("negative_duration", "absurd_duration"):
            minutes = -minutes if kind == "negative_duration" else rng.randint(20_000, 525_600)
        end = start + minutes * 60
        _event_dates(b, row, s, (start, end, minutes), day)
        if kind is not None:
            _dirty_event(rng, row, s, kind, refs)
            row[obj.dirty_slot] = kind
        row[s["IsArchived"]] = row[s["EndDateTime"]] is not None and end < ARCHIVE_BEFORE
        table[ids[i]] = tuple(row)
    return table


def _event_dates(
    b: _Builder, row: list, s: Mapping[str, int], span: tuple[int, int, int], day: _Days
) -> None:
    start, end, minutes = span
    row[s["StartDateTime"]] = row[s["ActivityDateTime"]] = b.stamp(start)
    row[s["EndDateTime"]] = b.stamp(end)
    row[s["ActivityDate"]] = day(start)
    row[s["DurationInMinutes"]] = minutes


def _dirty_event(
    rng: random.Random, row: list, s: Mapping[str, int], kind: str, refs: _Refs
) -> None:
    """Durations were made wrong before the dates were written; the rest is changed here."""
    if kind == "missing_dates":
        for name in ("StartDateTime", "EndDateTime", "ActivityDateTime", "ActivityDate"):
            row[s[name]] = None
    elif kind == "dangling_who":
        _set_links(row, s, (_choose(rng.random, refs.dangling_ids), None, None))
    elif kind == "padded_string":
        row[s["Subject"]] = _padded(row[s["Subject"]], rng)
