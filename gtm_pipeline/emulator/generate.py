"""The deterministic generated org: realistic accounts, contacts and opportunities.

(Leads, Tasks and Events are added afterwards by `generate_activities`, from their own random
streams, so they never change what this module generates.)

Same seed and counts give byte-identical records: all randomness comes from one seeded
`random.Random`, and timestamps sit in a fixed window in the past (live mutations later are
stamped with the wall clock, so they are always newer). Records are built straight into the
stored row tuples, sharing string objects wherever values repeat, so a million contacts stay
well within memory.

Adversarial on purpose: bulk-import clumps and mass updates make hundreds of records share one
`SystemModstamp`, and a `dirty_ratio` share of records carries one kind of dirt each (named in
the row's hidden dirty slot, which only the ground truth shows).
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

from gtm_pipeline.emulator.ids import make_id, make_ids
from gtm_pipeline.emulator.schema import INDUSTRIES, LEAD_SOURCES, STAGES, ObjectDef

DEFAULT_COUNTS = {"Account": 200, "Contact": 1000, "Opportunity": 400}

# The generated history ends here; everything generated is older than any live change.
HISTORY_END = 1_717_200_000  # 2024-06-01T00:00:00Z
HISTORY_SPAN = 3 * 365 * 86_400
DAY = 86_400

DUPLICATE_ID = "duplicate_id"
DIRTY_KINDS: dict[str, tuple[str, ...]] = {
    "Account": ("missing_required", "numeric_string", "padded_string", "long_string",
                "non_latin"),
    "Contact": ("missing_required", "duplicate_email", "padded_string", "long_string",
                "non_latin"),
    "Opportunity": ("missing_required", "numeric_string", "impossible_date", "padded_string",
                    "long_string", "non_latin"),
}  # fmt: skip

FIRST_NAMES = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
    "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas",
    "Sarah", "Carlos", "Karen", "Daniel", "Lisa", "Matthew", "Nancy", "Anthony", "Sandra",
    "Mark", "Ashley", "Priya", "Emily", "Paul", "Donna", "Andrew", "Michelle", "Joshua", "Carol",
    "Kenneth", "Amanda", "Kevin", "Melissa", "Brian", "Deborah", "Wei", "Stephanie", "Timothy",
    "Rebecca", "Ronald", "Sharon", "Jason", "Laura", "Jeffrey", "Cynthia", "Ryan", "Aisha",
    "Jacob", "Amy", "Gary", "Angela", "Nicholas", "Yuki", "Eric", "Anna", "Hiroshi", "Fatima",
    "Lars", "Ingrid", "Mateo", "Sofia", "Olu", "Chen",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Patel", "Kim", "Chen", "Schmidt",
    "Muller", "Rossi", "Okafor", "Tanaka", "Larsen", "Novak", "Kowalski", "Silva", "Dubois",
)  # fmt: skip
NON_LATIN_NAMES = (
    ("山田", "太郎"), ("Ерёменко", "Ольга"), ("محمد", "العلي"), ("김", "민준"),
    ("Παπαδόπουλος", "Νίκος"),
    ("王", "芳"), ("כהן", "דנה"), ("शर्मा", "अनिल"), ("Nguyễn", "Thị Hồng"), ("Öztürk", "Çağla"),
)  # fmt: skip
NON_LATIN_COMPANIES = (
    "株式会社サクラ", "ООО Северсталь Трейд", "شركة الأفق", "삼성테크", "Ελληνική Ενέργεια",
    "北京星辰科技有限公司", "Škoda Strojírny", "Ünlü Gıda A.Ş.",
)  # fmt: skip
COMPANY_HEADS = (
    "Acme", "Northwind", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay",
    "Soylent", "Cyberdyne", "Tyrell", "Wonka", "Gringotts", "Aperture", "Blue Sky", "Pied Piper",
    "Contoso", "Fabrikam", "Litware", "Tailspin", "Woodgrove", "Proseware", "Adatum", "Fourth",
    "Silverline", "Redwood", "Granite", "Cobalt", "Summit", "Harbor", "Meridian", "Pinnacle",
    "Evergreen", "Bright", "Crescent", "Atlas", "Nimbus", "Quantum", "Vertex", "Lumen", "Orbit",
    "Keystone", "Sterling", "Beacon", "Falcon", "Horizon", "Ironwood", "Juniper", "Kestrel",
)  # fmt: skip
COMPANY_TAILS = (
    "Analytics", "Logistics", "Systems", "Labs", "Foods", "Energy", "Health", "Capital",
    "Robotics", "Media", "Software", "Networks", "Partners", "Manufacturing", "Bio", "Retail",
    "Consulting", "Holdings", "Industries", "Cloud", "Security", "Motors", "Telecom", "Design",
)  # fmt: skip
COMPANY_SUFFIXES = ("", "", "", " Inc", " Inc.", " LLC", " Ltd", " GmbH", " Corp", " Group")
TLDS = (".com", ".com", ".com", ".io", ".co", ".net", ".de", ".co.uk")
FREE_MAIL = ("gmail.com", "outlook.com", "yahoo.com", "proton.me")
TITLES = (
    "CEO", "CTO", "CFO", "VP of Sales", "VP Marketing", "Head of Data", "Data Engineer",
    "Analytics Manager", "Director of Operations", "Account Executive", "Sales Manager",
    "Marketing Manager", "Software Engineer", "Product Manager", "Procurement Lead",
    "IT Director", "Office Manager", "Customer Success Manager", "RevOps Lead", None,
)  # fmt: skip
STREETS = (
    "Main St", "Market St", "Oak Ave", "Pine St", "Maple Ave", "Cedar Rd", "Elm St",
    "Washington Blvd", "Lake Shore Dr", "Mission St", "High St", "King St", "Church Rd",
    "Park Ave", "Broadway", "Sunset Blvd", "Harbor Way", "Innovation Dr",
)  # fmt: skip
PLACES = (
    ("San Francisco", "CA", "941", "United States"), ("New York", "NY", "100", "United States"),
    ("Austin", "TX", "787", "United States"), ("Chicago", "IL", "606", "United States"),
    ("Seattle", "WA", "981", "United States"), ("Boston", "MA", "021", "United States"),
    ("Denver", "CO", "802", "United States"), ("Atlanta", "GA", "303", "United States"),
    ("Toronto", "ON", "M5V", "Canada"), ("London", None, "EC1", "United Kingdom"),
    ("Berlin", None, "101", "Germany"), ("Paris", None, "750", "France"),
    ("Amsterdam", None, "101", "Netherlands"), ("Sydney", "NSW", "200", "Australia"),
    ("Singapore", None, "018", "Singapore"), ("Tokyo", None, "100", "Japan"),
    ("São Paulo", "SP", "010", "Brazil"), ("Mexico City", "CDMX", "065", "Mexico"),
)  # fmt: skip
COUNTRY_REGION = {
    "United States": "AMER", "Canada": "AMER", "United Kingdom": "EMEA", "Germany": "EMEA",
    "France": "EMEA", "Netherlands": "EMEA", "Australia": "APAC", "Singapore": "APAC",
    "Japan": "APAC", "Brazil": "LATAM", "Mexico": "LATAM",
}  # fmt: skip
NOTES = (
    "Met at Dreamforce", "Renewal due next quarter", "Prefers email", "Champion left company",
    "Evaluating competitors", "Budget approved", "Needs security review", "Key reference account",
)  # fmt: skip
PRODUCTS = (
    "Platform Renewal", "Expansion", "New Business", "Analytics Add-on", "Services",
    "Enterprise Upgrade", "Pilot", "Multi-year Deal",
)  # fmt: skip
NUMERIC_DIRT = ("1,200", "$3.5M", "N/A", "12k", "approx. 500", "-", "1.200,50")
IMPOSSIBLE_DATES = ("2024-02-30", "2023-04-31", "2024-13-01", "2023-02-29", "2022-00-10")
TIERS = ("A", "B", "C", "D")
STAGE_WEIGHTS = (14, 12, 10, 9, 8, 7, 8, 7, 14, 11)


@dataclass
class GeneratedOrg:
    """Rows per object (Id -> row tuple, in creation order) and the next Id sequence numbers."""

    tables: dict[str, dict[str, tuple]]
    next_sequence: dict[str, int]
    org_id: str
    user_id: str


def format_stamp(epoch_seconds: int) -> str:
    """The stored/wire form of a whole-second UTC timestamp."""
    t = time.gmtime(epoch_seconds)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.000+0000"
    )


def format_day(epoch_seconds: int) -> str:
    t = time.gmtime(epoch_seconds)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"


def sequence_base(seed: int) -> int:
    """Where a seed's Id sequence starts, so different seeds mint different Ids."""
    return 1_000_000 + (seed % 997) * 50_000_000


class _Builder:
    """Shared machinery: the seeded RNG, timelines with clumps, interned stamps, dirt choice.

    The RNG is the seed's own stream unless another is given (other objects' generators bring
    theirs, so they never consume this one's numbers).
    """

    def __init__(self, seed: int, dirty_ratio: float, rng: random.Random | None = None) -> None:
        self.rng = random.Random(seed) if rng is None else rng
        self.seed = seed
        self.dirty_ratio = dirty_ratio
        self._stamps: dict[int, str] = {}
        self._numbers: dict[float, float] = {}

    def stamp(self, epoch_seconds: int) -> str:
        """Equal instants share one string object: clumps cost one string, not hundreds."""
        try:
            return self._stamps[epoch_seconds]
        except KeyError:
            found = self._stamps[epoch_seconds] = format_stamp(epoch_seconds)
            return found

    def number(self, value: float) -> float:
        return self._numbers.setdefault(value, value)

    def timeline(self, n: int) -> tuple[list[int], list[int], list[int]]:
        """Created, LastModified and SystemModstamp seconds for n records in creation order.

        A share of records arrive in bulk-import clumps that share one stamp, and mass updates
        give scattered records one shared stamp, so ties cross page boundaries.
        """
        rng = self.rng
        sizes: list[int] = []
        placed = 0
        # One clump of a few hundred at a random early position, so even small orgs have ties
        # across a 200-record page.
        forced_at = rng.randint(0, n // 4) if n >= 250 else n + 1
        while placed < n:
            remaining = n - placed
            if placed >= forced_at:
                forced_at = n + 1
                size = min(remaining, rng.randint(250, 600))
            elif rng.random() < 0.0016:
                big = n >= 20_000 and rng.random() < 0.15
                size = min(remaining, rng.randint(2_100, 2_600) if big else rng.randint(150, 700))
            else:
                size = 1
            sizes.append(size)
            placed += size
        start = HISTORY_END - HISTORY_SPAN
        moments = sorted(rng.randint(start, HISTORY_END - DAY) for _ in sizes)
        created: list[int] = []
        for size, moment in zip(sizes, moments, strict=True):
            created.extend([moment] * size)
        modified = list(created)
        system = list(created)
        rand, randint = rng.random, rng.randint
        for i, c in enumerate(created):
            if rand() < 0.3:
                modified[i] = system[i] = randint(c, HISTORY_END - 60)
            if rand() < 0.05:
                system[i] = min(HISTORY_END - 1, system[i] + randint(1, DAY))
        for _ in range(min(40, max(1, n // 5_000))):
            when = randint(HISTORY_END - 30 * DAY, HISTORY_END - 60)
            picked = rng.sample(range(n), min(n, randint(200, 1_200)))
            for i in picked:
                if created[i] <= when:
                    modified[i] = system[i] = when
        return created, modified, system

    def dirty_plan(self, n: int, kinds: tuple[str, ...]) -> dict[int, str]:
        """Which record indices are dirty, and how: every kind gets a share when any are."""
        if n < 2 or self.dirty_ratio <= 0:
            return {}
        wanted = min(n - 1, max(len(kinds) + 1, round(n * self.dirty_ratio)))
        picked = self.rng.sample(range(1, n), wanted)
        dup_count = max(1, wanted // 40)
        plan = {i: DUPLICATE_ID for i in picked[:dup_count]}
        for j, i in enumerate(picked[dup_count:]):
            plan[i] = kinds[j % len(kinds)]
        return plan


def _long_text(rng: random.Random, base: str) -> str:
    """Always longer than the 255 characters a canonical text column holds."""
    repeats = max(rng.randint(30, 90), 256 // (len(base) + 1) + 1)
    return (base + " ") * repeats


def _padded(value: str | None, rng: random.Random) -> str:
    return " " * rng.randint(1, 3) + (value or "x") + " " * rng.randint(1, 4)


def _scored(b: _Builder, row: list, obj: ObjectDef, modified: int) -> None:
    """Earlier scores on some records, so writeback has diffs to compute."""
    rng = b.rng
    fit, engagement = round(rng.uniform(0, 100), 2), round(rng.uniform(0, 100), 2)
    combined = round(0.6 * fit + 0.4 * engagement, 2)
    slots = obj.slots
    row[slots["Fit_Score__c"]] = fit
    row[slots["Engagement_Score__c"]] = engagement
    row[slots["Combined_Score__c"]] = combined
    row[slots["Tier__c"]] = TIERS[min(3, int((100 - combined) // 25))]
    row[slots["Scored_At__c"]] = b.stamp(modified)


def _common(
    b: _Builder,
    row: list,
    obj: ObjectDef,
    rid: str,
    times: tuple[int, int, int],
    region: str | None,
) -> None:
    slots = obj.slots
    created, modified, system = times
    rand = b.rng.random
    row[0] = rid
    row[1] = False
    row[slots["CreatedDate"]] = b.stamp(created)
    row[slots["LastModifiedDate"]] = b.stamp(modified)
    row[slots["SystemModstamp"]] = b.stamp(system)
    row[slots["Region__c"]] = region
    row[slots["Record_Number__c"]] = f"REC-{rid[3:15]}"  # an auto-number is never empty
    if rand() < 0.2:
        row[slots["Notes__c"]] = NOTES[int(rand() * len(NOTES))]
    row[slots["Days_Since_Activity__c"]] = b.number(float((HISTORY_END - modified) // DAY))
    if rand() < 0.1:
        _scored(b, row, obj, modified)


@dataclass
class _AccountInfo:
    ids: list[str]
    domains: list[str]
    names: list[str]
    regions: list[str | None]


def _accounts(b: _Builder, obj: ObjectDef, n: int, base: int) -> tuple[dict, _AccountInfo]:
    rng = b.rng
    s = obj.slots
    created, modified, system = b.timeline(n)
    plan = b.dirty_plan(n, DIRTY_KINDS["Account"])
    ids = make_ids(obj.key_prefix, base, n)
    table: dict[str, tuple] = {}
    info = _AccountInfo([], [], [], [])
    seen_domains: dict[str, int] = {}
    for i in range(n):
        head = COMPANY_HEADS[rng.randrange(len(COMPANY_HEADS))]
        tail = COMPANY_TAILS[rng.randrange(len(COMPANY_TAILS))]
        name = f"{head} {tail}{COMPANY_SUFFIXES[rng.randrange(len(COMPANY_SUFFIXES))]}"
        stem = (head + tail).lower().replace(" ", "")
        count = seen_domains.get(stem, 0)
        seen_domains[stem] = count + 1
        domain = f"{stem}{count + 1 if count else ''}{TLDS[rng.randrange(len(TLDS))]}"
        city, state, postal, country = PLACES[rng.randrange(len(PLACES))]
        employees = int(rng.lognormvariate(4.5, 1.6)) + 1
        row: list = [None] * (obj.dirty_slot + 1)
        rid = ids[i]
        _common(b, row, obj, rid, (created[i], modified[i], system[i]), COUNTRY_REGION[country])
        row[s["Name"]] = name
        row[s["Website"]] = f"https://www.{domain}" if rng.random() < 0.7 else f"www.{domain}"
        row[s["Industry"]] = INDUSTRIES[rng.randrange(len(INDUSTRIES))]
        row[s["NumberOfEmployees"]] = employees
        row[s["AnnualRevenue"]] = float(round(employees * rng.uniform(80, 320)) * 1000)
        row[s["Phone"]] = f"+1 ({rng.randint(201, 989)}) 555-{rng.randint(0, 9999):04d}"
        row[s["BillingStreet"]] = f"{rng.randint(1, 9999)} {STREETS[rng.randrange(len(STREETS))]}"
        row[s["BillingCity"]] = city
        row[s["BillingState"]] = state
        row[s["BillingPostalCode"]] = f"{postal}{rng.randint(0, 99):02d}"
        row[s["BillingCountry"]] = country
        kind = plan.get(i)
        if kind is not None:
            _dirty_account(rng, row, s, kind)
            row[obj.dirty_slot] = kind
        info.ids.append(rid)
        info.domains.append(domain)
        info.names.append(name)  # clean: opportunities embed it in their own names
        info.regions.append(COUNTRY_REGION[country])
        table[rid] = tuple(row)
    return table, info


def _dirty_account(rng: random.Random, row: list, s: Mapping[str, int], kind: str) -> None:
    if kind == "missing_required":
        row[s["Name"]] = None
    elif kind == "numeric_string":
        field = "NumberOfEmployees" if rng.random() < 0.5 else "AnnualRevenue"
        row[s[field]] = NUMERIC_DIRT[rng.randrange(len(NUMERIC_DIRT))]
    elif kind == "padded_string":
        row[s["Name"]] = _padded(row[s["Name"]], rng)
    elif kind == "long_string":
        row[s["Name"]] = _long_text(rng, row[s["Name"]])
    elif kind == "non_latin":
        row[s["Name"]] = NON_LATIN_COMPANIES[rng.randrange(len(NON_LATIN_COMPANIES))]


def _contacts(b: _Builder, obj: ObjectDef, n: int, base: int, accounts: _AccountInfo) -> dict:
    rng = b.rng
    rand = rng.random
    s = obj.slots
    created, modified, system = b.timeline(n)
    plan = b.dirty_plan(n, DIRTY_KINDS["Contact"])
    ids = make_ids(obj.key_prefix, base, n)
    postal_pool = {p[2]: [f"{p[2]}{k:02d}" for k in range(100)] for p in PLACES}
    street_pool = [f"{k} {street}" for street in STREETS for k in range(1, 400, 7)]
    phones = [f"({a}) 555-" for a in range(201, 990)]
    seen_email: set[str] = set()
    clean_emails: list[tuple[str, int]] = []  # (email, stamp): a duplicate_email copies one
    table: dict[str, tuple] = {}
    n_accounts = len(accounts.ids)
    width = obj.dirty_slot + 1
    slot_account, slot_first, slot_last = s["AccountId"], s["FirstName"], s["LastName"]
    slot_email, slot_title, slot_phone = s["Email"], s["Title"], s["Phone"]
    slot_street, slot_city, slot_state = s["MailingStreet"], s["MailingCity"], s["MailingState"]
    slot_postal, slot_country, slot_lead = (
        s["MailingPostalCode"],
        s["MailingCountry"],
        s["LeadSource"],
    )
    n_first, n_last, n_titles = len(FIRST_NAMES), len(LAST_NAMES), len(TITLES)
    n_phones, n_streets, n_places = len(phones), len(street_pool), len(PLACES)
    n_leads, n_free = len(LEAD_SOURCES), len(FREE_MAIL)
    for i in range(n):
        first = FIRST_NAMES[int(rand() * n_first)]
        last = LAST_NAMES[int(rand() * n_last)]
        if n_accounts and rand() < 0.97:
            a = int(rand() * n_accounts)
            account_id, domain, region = accounts.ids[a], accounts.domains[a], accounts.regions[a]
        else:
            account_id, domain, region = None, FREE_MAIL[int(rand() * n_free)], None
        local = f"{first}.{last}".lower()
        email = f"{local}@{domain}"
        if email in seen_email:
            email = f"{local}{i}@{domain}"
        seen_email.add(email)
        city, state, postal, country = PLACES[int(rand() * n_places)]
        row: list = [None] * width
        rid = ids[i]
        _common(b, row, obj, rid, (created[i], modified[i], system[i]), region)
        row[slot_account] = account_id
        row[slot_first] = first
        row[slot_last] = last
        row[slot_email] = email
        row[slot_title] = TITLES[int(rand() * n_titles)]
        row[slot_phone] = phones[int(rand() * n_phones)] + f"{int(rand() * 10000):04d}"
        row[slot_street] = street_pool[int(rand() * n_streets)]
        row[slot_city] = city
        row[slot_state] = state
        row[slot_postal] = postal_pool[postal][int(rand() * 100)]
        row[slot_country] = country
        row[slot_lead] = LEAD_SOURCES[int(rand() * n_leads)]
        kind = plan.get(i)
        if kind is not None:
            original_stamp = _dirty_contact(rng, row, s, kind, clean_emails)
            if original_stamp is not None and system[i] >= original_stamp:
                # The copy is the older record, so "most recently modified wins" keeps the original.
                older = original_stamp - 1
                row[s["SystemModstamp"]] = row[s["LastModifiedDate"]] = b.stamp(older)
                if created[i] > older:
                    row[s["CreatedDate"]] = b.stamp(older)
            row[obj.dirty_slot] = kind
        else:
            clean_emails.append((email, system[i]))
        table[rid] = tuple(row)
    return table


def _dirty_contact(
    rng: random.Random, row: list, s: Mapping[str, int], kind: str, earlier: list[tuple[str, int]]
) -> int | None:
    """Make the row dirty; for a duplicate email, return the copied record's stamp."""
    if kind == "missing_required":
        row[s["LastName"]] = None
        row[s["Email"]] = None
    elif kind == "duplicate_email":
        original, stamp = (
            earlier[rng.randrange(len(earlier))] if earlier else ("jane.doe@example.com", None)
        )
        respelled = "".join(c.upper() if rng.random() < 0.5 else c for c in original)
        row[s["Email"]] = _padded(respelled, rng) if rng.random() < 0.7 else respelled.upper()
        return stamp
    elif kind == "padded_string":
        field = "Email" if rng.random() < 0.5 else "FirstName"
        row[s[field]] = _padded(row[s[field]], rng)
    elif kind == "long_string":
        row[s["Title"]] = _long_text(rng, row[s["Title"]] or "Senior Vice President")
    elif kind == "non_latin":
        last, first = NON_LATIN_NAMES[rng.randrange(len(NON_LATIN_NAMES))]
        row[s["LastName"]] = last
        row[s["FirstName"]] = first
    return None


def _opportunities(b: _Builder, obj: ObjectDef, n: int, base: int, accounts: _AccountInfo) -> dict:
    rng = b.rng
    s = obj.slots
    created, modified, system = b.timeline(n)
    plan = b.dirty_plan(n, DIRTY_KINDS["Opportunity"])
    ids = make_ids(obj.key_prefix, base, n)
    table: dict[str, tuple] = {}
    n_accounts = len(accounts.ids)
    for i in range(n):
        a = rng.randrange(n_accounts) if n_accounts else None
        stage, probability = rng.choices(STAGES, weights=STAGE_WEIGHTS)[0]
        row: list = [None] * (obj.dirty_slot + 1)
        rid = ids[i]
        region = accounts.regions[a] if a is not None else None
        _common(b, row, obj, rid, (created[i], modified[i], system[i]), region)
        row[s["AccountId"]] = accounts.ids[a] if a is not None else None
        account_name = accounts.names[a] if a is not None else "Direct"
        row[s["Name"]] = f"{account_name} - {PRODUCTS[rng.randrange(len(PRODUCTS))]}"
        row[s["StageName"]] = stage
        row[s["CloseDate"]] = format_day(created[i] + rng.randint(14, 200) * DAY)
        row[s["Amount"]] = round(rng.lognormvariate(10, 1.1), 2) if rng.random() < 0.93 else None
        row[s["Probability"]] = b.number(float(probability))
        kind = plan.get(i)
        if kind is not None:
            _dirty_opportunity(rng, row, s, kind)
            row[obj.dirty_slot] = kind
        table[rid] = tuple(row)
    return table


def _dirty_opportunity(rng: random.Random, row: list, s: Mapping[str, int], kind: str) -> None:
    if kind == "missing_required":
        row[s["AccountId"]] = None
    elif kind == "numeric_string":
        field = "Amount" if rng.random() < 0.7 else "Probability"
        row[s[field]] = NUMERIC_DIRT[rng.randrange(len(NUMERIC_DIRT))]
    elif kind == "impossible_date":
        row[s["CloseDate"]] = IMPOSSIBLE_DATES[rng.randrange(len(IMPOSSIBLE_DATES))]
    elif kind == "padded_string":
        row[s["Name"]] = _padded(row[s["Name"]], rng)
    elif kind == "long_string":
        row[s["Name"]] = _long_text(rng, row[s["Name"]])
    elif kind == "non_latin":
        row[s["Name"]] = NON_LATIN_COMPANIES[rng.randrange(len(NON_LATIN_COMPANIES))] + " – 更新"


def generate(
    objects: Mapping[str, ObjectDef],
    *,
    seed: int,
    counts: Mapping[str, int],
    dirty_ratio: float,
) -> GeneratedOrg:
    """Build every object's rows; accounts first, since contacts and opportunities point at them."""
    b = _Builder(seed, dirty_ratio)
    base = sequence_base(seed)
    accounts, info = _accounts(b, objects["Account"], counts["Account"], base)
    contacts = _contacts(b, objects["Contact"], counts["Contact"], base, info)
    opportunities = _opportunities(b, objects["Opportunity"], counts["Opportunity"], base, info)
    tables = {"Account": accounts, "Contact": contacts, "Opportunity": opportunities}
    return GeneratedOrg(
        tables=tables,
        next_sequence={name: base + counts[name] for name in tables},
        org_id=make_id("00D", base // 1000 + seed % 1000),
        user_id=make_id("005", base + 1),
    )
