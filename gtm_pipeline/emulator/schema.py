"""The emulated org's object model: Account, Contact, Opportunity, Lead, Task and Event.

One definition serves describe, the SOQL compiler, the writer and the generator, so they can
never disagree on a field's type or writability. Records are stored as tuples in the order of
each object's *stored* fields (compound fields are derived when read), with one trailing slot
holding the record's dirty kind (ground truth only, never served).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from gtm_pipeline.emulator.ids import KEY_PREFIXES

# Field types whose stored value is a str compared case-insensitively.
TEXT_TYPES = frozenset(
    {"string", "textarea", "email", "phone", "url", "picklist", "multipicklist", "combobox"}
)
ID_TYPES = frozenset({"id", "reference"})
NUMBER_TYPES = frozenset({"int", "double", "currency", "percent"})
COMPOUND_TYPES = frozenset({"address", "location"})

_SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "string": "xsd:string",
    "textarea": "xsd:string",
    "email": "xsd:string",
    "phone": "xsd:string",
    "url": "xsd:string",
    "picklist": "xsd:string",
    "multipicklist": "xsd:string",
    "combobox": "xsd:string",
    "boolean": "xsd:boolean",
    "int": "xsd:int",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
    "address": "urn:address",
    "location": "urn:location",
}

ADDRESS_KEYS = ("street", "city", "state", "postalCode", "country")
_ADDRESS_SUFFIXES = ("Street", "City", "State", "PostalCode", "Country")
# The geolocation parts every standard address has besides its text parts (Address Compound
# Fields in the Object Reference): latitude and longitude doubles of precision 18 and scale 15,
# and the geocode accuracy picklist, whose values are Salesforce's documented ones.
GEO_KEYS = ("latitude", "longitude", "geocodeAccuracy")
_GEO_SUFFIXES = ("Latitude", "Longitude", "GeocodeAccuracy")
GEOCODE_ACCURACIES = (
    "Address", "NearAddress", "Block", "Street", "ExtendedZip", "Zip", "Neighborhood", "City",
    "County", "State", "Unknown",
)  # fmt: skip
# Objects whose read-only `Name` is the compound of `FirstName` and `LastName`.
PERSON_NAME_OBJECTS = frozenset({"Contact", "Lead"})


@dataclass(frozen=True)
class FieldDef:
    """One field as describe reports it, plus what the emulator needs to store and query it."""

    name: str
    label: str
    type: str
    length: int = 0
    precision: int = 0
    scale: int = 0
    digits: int = 0
    custom: bool = False
    updateable: bool = True
    createable: bool = True
    nillable: bool = True
    calculated: bool = False
    formula: str | None = None
    auto_number: bool = False
    unique: bool = False
    external_id: bool = False
    compound_field_name: str | None = None
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    picklist_values: tuple[str, ...] = ()
    # What a new record gets when the field is not sent (describe: defaultedOnCreate, and the
    # picklist entry flagged defaultValue).
    default: object = None

    @property
    def is_compound(self) -> bool:
        return self.type in COMPOUND_TYPES

    @property
    def polymorphic(self) -> bool:
        """A reference that may point at records of several objects (WhoId, WhatId)."""
        return len(self.reference_to) > 1

    @property
    def filterable(self) -> bool:
        return not self.is_compound and self.type != "textarea"

    @property
    def sortable(self) -> bool:
        return not self.is_compound and self.type not in ("textarea", "multipicklist")

    def describe(self) -> dict:
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "length": self.length,
            "byteLength": self.length * 3,
            "precision": self.precision,
            "scale": self.scale,
            "digits": self.digits,
            "custom": self.custom,
            "updateable": self.updateable,
            "createable": self.createable,
            "nillable": self.nillable,
            "calculated": self.calculated,
            "calculatedFormula": self.formula,
            "compoundFieldName": self.compound_field_name,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "polymorphicForeignKey": self.polymorphic,
            "relationshipOrder": None,
            "filterable": self.filterable,
            "sortable": self.sortable,
            "groupable": self.filterable and self.type not in NUMBER_TYPES - {"int"},
            "soapType": _SOAP_TYPES[self.type],
            "idLookup": self.type == "id" or self.external_id or self.auto_number,
            "unique": self.unique,
            "externalId": self.external_id,
            "caseSensitive": False,
            "defaultedOnCreate": self.name in _SYSTEM_FIELDS or self.default is not None,
            "defaultValue": None,
            "htmlFormatted": False,
            "nameField": self.name == "Name",
            "namePointing": False,
            "permissionable": self.custom and self.nillable and not self.calculated,
            "restrictedPicklist": False,
            "dependentPicklist": False,
            "deprecatedAndHidden": False,
            "encrypted": False,
            "autoNumber": self.auto_number,
            "cascadeDelete": False,
            "restrictedDelete": False,
            "writeRequiresMasterRead": False,
            "inlineHelpText": None,
            "mask": None,
            "maskType": None,
            "controllerName": None,
            "extraTypeInfo": None,
            "picklistValues": [
                {
                    "active": True,
                    "defaultValue": v == self.default,
                    "label": v,
                    "validFor": None,
                    "value": v,
                }
                for v in self.picklist_values
            ],
        }


_SYSTEM_FIELDS = frozenset({"Id", "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp"})


@dataclass
class ObjectDef:
    """An sObject: its fields in describe order and the slot of every stored field in a row."""

    name: str
    label: str
    label_plural: str
    fields: tuple[FieldDef, ...]
    # Object-level describe attributes where this object differs from the common defaults.
    overrides: dict[str, object] = field(default_factory=dict)
    slots: dict[str, int] = field(init=False)
    dirty_slot: int = field(init=False)
    _by_lower: dict[str, FieldDef] = field(init=False, repr=False)
    _relationships: dict[str, FieldDef] = field(init=False, repr=False)
    stored: tuple[FieldDef, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.stored = tuple(f for f in self.fields if not is_derived(self.name, f))
        self.slots = {f.name: i for i, f in enumerate(self.stored)}
        self.dirty_slot = len(self.stored)
        self._by_lower = {f.name.lower(): f for f in self.fields}
        self._relationships = {
            f.relationship_name.lower(): f for f in self.fields if f.relationship_name
        }

    @property
    def key_prefix(self) -> str:
        return KEY_PREFIXES[self.name]

    def field(self, name: str) -> FieldDef | None:
        """Case-insensitive field lookup, as SOQL and the REST API do it."""
        return self._by_lower.get(name.lower())

    def relationship(self, name: str) -> FieldDef | None:
        """The reference field behind a relationship name like `Account`, case-insensitively."""
        return self._relationships.get(name.lower())

    def address_components(self, compound: str) -> tuple[str, ...]:
        prefix = compound.removesuffix("Address")
        return tuple(prefix + suffix for suffix in _ADDRESS_SUFFIXES)

    def geolocation_components(self, compound: str) -> tuple[str, ...]:
        prefix = compound.removesuffix("Address")
        return tuple(prefix + suffix for suffix in _GEO_SUFFIXES)

    def describe(self) -> dict:
        described = {
            **self._object_attributes(),
            "urls": {
                "sobject": f"/services/data/vXX.X/sobjects/{self.name}",
                "describe": f"/services/data/vXX.X/sobjects/{self.name}/describe",
                "rowTemplate": f"/services/data/vXX.X/sobjects/{self.name}/{{ID}}",
            },
            "fields": [f.describe() for f in self.fields],
        }
        described.update(self.overrides)
        return described

    def global_describe(self, api_version: str) -> dict:
        """This object's entry in the global describe (`GET sobjects`, a
        DescribeGlobalSObjectResult): the object-level attributes of its describe, no fields,
        its URLs on the API version the call named."""
        base = f"/services/data/v{api_version}/sobjects/{self.name}"
        entry = {
            **self._object_attributes(),
            "urls": {
                "sobject": base,
                "describe": f"{base}/describe",
                "rowTemplate": f"{base}/{{ID}}",
            },
        }
        entry.update(self.overrides)
        return entry

    def _object_attributes(self) -> dict:
        return {
            "name": self.name,
            "label": self.label,
            "labelPlural": self.label_plural,
            "keyPrefix": self.key_prefix,
            "custom": False,
            "queryable": True,
            "retrieveable": True,
            "searchable": True,
            "createable": True,
            "updateable": True,
            "deletable": True,
            "undeletable": True,
            "replicateable": True,
            "triggerable": True,
            "layoutable": True,
            "mergeable": True,
        }


def is_derived(object_name: str, f: FieldDef) -> bool:
    """Compound fields are computed from their components when read, never stored."""
    return f.is_compound or (object_name in PERSON_NAME_OBJECTS and f.name == "Name")


def compound_reader(obj: ObjectDef, f: FieldDef) -> Callable[[tuple], object]:
    """How to read a derived field from a stored row."""
    if f.type == "address":
        slots = [obj.slots[c] for c in obj.address_components(f.name)]
        geo_slots = [obj.slots[c] for c in obj.geolocation_components(f.name)]
        keys = ADDRESS_KEYS + GEO_KEYS

        def read_address(row: tuple) -> object:
            values = [row[s] for s in slots + geo_slots]
            if all(v is None for v in values):
                return None
            return dict(sorted(zip(keys, values, strict=True)))

        return read_address
    if obj.name in PERSON_NAME_OBJECTS and f.name == "Name":
        first, last = obj.slots["FirstName"], obj.slots["LastName"]

        def read_name(row: tuple) -> object:
            parts = [p for p in (row[first], row[last]) if p]
            return " ".join(parts) if parts else None

        return read_name
    raise ValueError(f"{obj.name}.{f.name} is not a derived field")


# --- field builders ------------------------------------------------------------------------


def _system() -> list[FieldDef]:
    return [
        FieldDef(
            "Id", "Record ID", "id", length=18, updateable=False, createable=False, nillable=False
        ),
        FieldDef(
            "IsDeleted", "Deleted", "boolean", updateable=False, createable=False, nillable=False
        ),
    ]


def _audit() -> list[FieldDef]:
    return [
        FieldDef(name, label, "datetime", updateable=False, createable=False, nillable=False)
        for name, label in (
            ("CreatedDate", "Created Date"),
            ("LastModifiedDate", "Last Modified Date"),
            ("SystemModstamp", "System Modstamp"),
        )
    ]


def _text(name: str, label: str, length: int = 255, type_: str = "string", **kw) -> FieldDef:
    return FieldDef(name, label, type_, length=length, **kw)


def _number(name: str, label: str, type_: str, precision: int, scale: int, **kw) -> FieldDef:
    digits = precision if type_ == "int" else 0
    if type_ == "int":
        precision = 0
    return FieldDef(name, label, type_, precision=precision, scale=scale, digits=digits, **kw)


def _address(prefix: str, label: str) -> list[FieldDef]:
    """A standard address: text parts, geolocation parts and the read-only compound, with the
    lengths, precision and scale of the Salesforce Field Reference (Account Billing*). Lead's
    address has no prefix: Street, City, ... and the compound Address."""
    compound = f"{prefix}Address"
    part = {"compound_field_name": compound}

    def labelled(text: str) -> str:
        return f"{label} {text}".strip()

    return [
        _text(f"{prefix}Street", labelled("Street"), 255, "textarea", **part),
        _text(f"{prefix}City", labelled("City"), 40, **part),
        _text(f"{prefix}State", labelled("State/Province"), 80, **part),
        _text(f"{prefix}PostalCode", labelled("Zip/Postal Code"), 20, **part),
        _text(f"{prefix}Country", labelled("Country"), 80, **part),
        _number(f"{prefix}Latitude", labelled("Latitude"), "double", 18, 15, **part),
        _number(f"{prefix}Longitude", labelled("Longitude"), "double", 18, 15, **part),
        _text(
            f"{prefix}GeocodeAccuracy",
            labelled("Geocode Accuracy"),
            40,
            "picklist",
            picklist_values=GEOCODE_ACCURACIES,
            **part,
        ),
        FieldDef(compound, labelled("Address"), "address", updateable=False, createable=False),
    ]


def _reference(
    name: str, label: str, targets: tuple[str, ...], relationship: str, *, writable: bool = True
) -> FieldDef:
    return FieldDef(
        name,
        label,
        "reference",
        length=18,
        reference_to=targets,
        relationship_name=relationship,
        updateable=writable,
        createable=writable,
    )


def _read_only(name: str, label: str, type_: str, **kw) -> FieldDef:
    """A field Salesforce maintains itself: neither createable nor updateable."""
    return FieldDef(name, label, type_, updateable=False, createable=False, **kw)


def _picklist(name: str, label: str, values: tuple[str, ...], **kw) -> FieldDef:
    return _text(name, label, 255, "picklist", picklist_values=values, **kw)


REGIONS = ("AMER", "EMEA", "APAC", "LATAM")


def _custom() -> list[FieldDef]:
    return [
        _number("Fit_Score__c", "Fit Score", "double", 18, 2, custom=True),
        _number("Engagement_Score__c", "Engagement Score", "double", 18, 2, custom=True),
        _number("Combined_Score__c", "Combined Score", "double", 18, 2, custom=True),
        _text("Tier__c", "Tier", 20, custom=True),
        FieldDef("Scored_At__c", "Scored At", "datetime", custom=True),
        _text("Region__c", "Region", 255, "picklist", custom=True, picklist_values=REGIONS),
        _text("Notes__c", "Notes", 255, custom=True),
        _number(
            "Days_Since_Activity__c",
            "Days Since Activity",
            "double",
            18,
            0,
            custom=True,
            updateable=False,
            createable=False,
            calculated=True,
            formula="TODAY() - DATEVALUE(LastModifiedDate)",
        ),
        # Fields a careless writeback could ruin, so the writeback rule has real ones to refuse:
        # a whole-number score (Salesforce rounds what is sent to scale 0), an auto-number (a
        # read-only string), and an external id that is also unique (what integrations match on).
        _number("Legacy_Score__c", "Legacy Score", "double", 3, 0, custom=True),
        _text(
            "Record_Number__c",
            "Record Number",
            30,
            custom=True,
            updateable=False,
            createable=False,
            nillable=False,
            auto_number=True,
        ),
        _text("External_Key__c", "External Key", 64, custom=True, unique=True, external_id=True),
    ]


INDUSTRIES = (
    "Agriculture",
    "Apparel",
    "Banking",
    "Biotechnology",
    "Chemicals",
    "Communications",
    "Construction",
    "Consulting",
    "Education",
    "Electronics",
    "Energy",
    "Engineering",
    "Entertainment",
    "Environmental",
    "Finance",
    "Food & Beverage",
    "Government",
    "Healthcare",
    "Hospitality",
    "Insurance",
    "Machinery",
    "Manufacturing",
    "Media",
    "Not For Profit",
    "Recreation",
    "Retail",
    "Shipping",
    "Technology",
    "Telecommunications",
    "Transportation",
    "Utilities",
    "Other",
)
LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
STAGES = (
    ("Prospecting", 10),
    ("Qualification", 10),
    ("Needs Analysis", 20),
    ("Value Proposition", 50),
    ("Id. Decision Makers", 60),
    ("Perception Analysis", 70),
    ("Proposal/Price Quote", 75),
    ("Negotiation/Review", 90),
    ("Closed Won", 100),
    ("Closed Lost", 0),
)


def _account() -> ObjectDef:
    fields = [
        *_system(),
        _text("Name", "Account Name", 255, nillable=False),
        _text("Website", "Website", 255, "url"),
        _text("Industry", "Industry", 255, "picklist", picklist_values=INDUSTRIES),
        _number("NumberOfEmployees", "Employees", "int", 8, 0),
        _number("AnnualRevenue", "Annual Revenue", "currency", 18, 0),
        _text("Phone", "Account Phone", 40, "phone"),
        *_address("Billing", "Billing"),
        *_audit(),
        *_custom(),
    ]
    return ObjectDef("Account", "Account", "Accounts", tuple(fields))


def _contact() -> ObjectDef:
    fields = [
        *_system(),
        FieldDef(
            "AccountId",
            "Account ID",
            "reference",
            length=18,
            reference_to=("Account",),
            relationship_name="Account",
        ),
        _text("LastName", "Last Name", 80, compound_field_name="Name"),
        _text("FirstName", "First Name", 40, compound_field_name="Name"),
        _text("Name", "Full Name", 121, updateable=False, createable=False, nillable=False),
        _text("Email", "Email", 80, "email"),
        _text("Title", "Title", 128),
        _text("Phone", "Business Phone", 40, "phone"),
        FieldDef("EmailBouncedDate", "Email Bounced Date", "datetime"),
        *_address("Mailing", "Mailing"),
        _text("LeadSource", "Lead Source", 255, "picklist", picklist_values=LEAD_SOURCES),
        *_audit(),
        *_custom(),
    ]
    return ObjectDef("Contact", "Contact", "Contacts", tuple(fields))


def _opportunity() -> ObjectDef:
    fields = [
        *_system(),
        FieldDef(
            "AccountId",
            "Account ID",
            "reference",
            length=18,
            reference_to=("Account",),
            relationship_name="Account",
        ),
        _text("Name", "Name", 120, nillable=False),
        _text(
            "StageName",
            "Stage",
            255,
            "picklist",
            nillable=False,
            picklist_values=tuple(s for s, _ in STAGES),
        ),
        FieldDef("CloseDate", "Close Date", "date", nillable=False),
        _number("Amount", "Amount", "currency", 18, 2),
        _number("Probability", "Probability (%)", "percent", 3, 0),
        *_audit(),
        *_custom(),
    ]
    return ObjectDef(
        "Opportunity", "Opportunity", "Opportunities", tuple(fields), {"mergeable": False}
    )


LEAD_STATUSES = (
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
)
CONVERTED_LEAD_STATUS = "Closed - Converted"
TASK_STATUSES = ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred")
# The statuses whose TaskStatus record is flagged closed in a new org: IsClosed follows them.
CLOSED_TASK_STATUSES = frozenset({"Completed"})
PRIORITIES = ("High", "Normal", "Low")
TASK_SUBTYPES = ("Task", "Email", "ListEmail", "Cadence", "Call", "LinkedIn")
CALL_TYPES = ("Internal", "Inbound", "Outbound")
EVENT_TYPES = ("Meeting", "Call", "Email", "Other")
# The subject suggestions (a combobox) of a new org; any other text may be saved too.
TASK_SUBJECTS = ("Call", "Send Letter", "Send Quote", "Other")
EVENT_SUBJECTS = ("Call", "Email", "Meeting", "Send Letter/Quote", "Other")


def _lead() -> ObjectDef:
    """Lead per the Object Reference: Company and LastName are required, the conversion fields
    are read-only (IsConverted may be set on create only), Name is the compound of the names."""
    fields = [
        *_system(),
        _text("LastName", "Last Name", 80, compound_field_name="Name", nillable=False),
        _text("FirstName", "First Name", 40, compound_field_name="Name"),
        _text("Name", "Full Name", 121, updateable=False, createable=False, nillable=False),
        _text("Title", "Title", 128),
        _text("Company", "Company", 255, nillable=False),
        *_address("", ""),
        _text("Phone", "Phone", 40, "phone"),
        _text("Email", "Email", 80, "email"),
        _picklist("LeadSource", "Lead Source", LEAD_SOURCES),
        _picklist("Status", "Status", LEAD_STATUSES, nillable=False, default=LEAD_STATUSES[0]),
        _picklist("Industry", "Industry", INDUSTRIES),
        FieldDef(
            "IsConverted", "Converted", "boolean", updateable=False, nillable=False, default=False
        ),
        _read_only("ConvertedDate", "Converted Date", "date"),
        _reference(
            "ConvertedAccountId",
            "Converted Account ID",
            ("Account",),
            "ConvertedAccount",
            writable=False,
        ),
        _reference(
            "ConvertedContactId",
            "Converted Contact ID",
            ("Contact",),
            "ConvertedContact",
            writable=False,
        ),
        _reference(
            "ConvertedOpportunityId",
            "Converted Opportunity ID",
            ("Opportunity",),
            "ConvertedOpportunity",
            writable=False,
        ),
        *_audit(),
        *_custom(),
    ]
    return ObjectDef("Lead", "Lead", "Leads", tuple(fields))


def _activity_links() -> list[FieldDef]:
    """WhoId and WhatId (polymorphic lookups) and the AccountId Salesforce derives from them."""
    return [
        _reference("WhoId", "Name ID", ("Contact", "Lead"), "Who"),
        _reference("WhatId", "Related To ID", ("Account", "Opportunity"), "What"),
        _reference("AccountId", "Account ID", ("Account",), "Account", writable=False),
    ]


def _archived() -> FieldDef:
    return _read_only("IsArchived", "Archived", "boolean", nillable=False, default=False)


def _task() -> ObjectDef:
    """Task per the Object Reference: IsClosed follows Status, CompletedDateTime is stamped when
    the task is saved closed, TaskSubtype may be set on create only."""
    fields = [
        *_system(),
        *_activity_links(),
        _text("Subject", "Subject", 255, "combobox", picklist_values=TASK_SUBJECTS),
        FieldDef("ActivityDate", "Due Date Only", "date"),
        _picklist("Status", "Status", TASK_STATUSES, nillable=False, default=TASK_STATUSES[0]),
        _picklist("Priority", "Priority", PRIORITIES, nillable=False, default="Normal"),
        _read_only("IsClosed", "Closed", "boolean", nillable=False, default=False),
        _read_only("CompletedDateTime", "Completed Date/Time", "datetime"),
        _picklist("TaskSubtype", "Task Subtype", TASK_SUBTYPES, updateable=False),
        _number("CallDurationInSeconds", "Call Duration", "int", 9, 0),
        _picklist("CallType", "Call Type", CALL_TYPES),
        _archived(),
        *_audit(),
    ]
    return ObjectDef("Task", "Task", "Tasks", tuple(fields), {"mergeable": False})


def _event() -> ObjectDef:
    """Event per the Object Reference: EventSubtype may be set on create only."""
    fields = [
        *_system(),
        *_activity_links(),
        _text("Subject", "Subject", 255, "combobox", picklist_values=EVENT_SUBJECTS),
        FieldDef("StartDateTime", "Start Date Time", "datetime"),
        FieldDef("EndDateTime", "End Date Time", "datetime"),
        FieldDef("ActivityDateTime", "Due Date Time", "datetime"),
        FieldDef("ActivityDate", "Due Date Only", "date"),
        _number("DurationInMinutes", "Duration", "int", 8, 0),
        _picklist("EventSubtype", "Event Subtype", ("Event",), updateable=False),
        _picklist("Type", "Type", EVENT_TYPES),
        _text("Location", "Location", 255),
        _archived(),
        *_audit(),
    ]
    return ObjectDef("Event", "Event", "Events", tuple(fields), {"mergeable": False})


def build_objects() -> dict[str, ObjectDef]:
    """Fresh definitions of every emulated object, keyed by canonical name."""
    return {o.name: o for o in (_account(), _contact(), _opportunity(), _lead(), _task(), _event())}


OBJECTS = build_objects()
