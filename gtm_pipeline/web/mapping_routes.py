"""The field-mapping page: pick, per canonical column, the Salesforce field that fills it.

The choices come from the tenant's own org (describe, cached per process), so an admin maps
what the org really has. A save validates the whole submitted mapping against that describe
before anything is written, then replaces the tenant's mapping in one transaction: it is stored
whole or not at all, and a name that is not a real field of the org (an injection attempt
included) never reaches the store, let alone a SOQL query.

The same page edits where the entity's scores are written back (`/mapping/writeback`): it offers
the org's fields that can hold each score, from the describe the page already read, and a save
is checked against a fresh describe (so a field deleted since the page was shown is refused)
before the map is stored in one transaction; "Use the default fields" forgets the tenant's map.

The page answers like the other routes: an operator credential is needed, a tenant outside its
scope (or never connected) is 404, and a cookie session must echo its CSRF token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gtm_pipeline.config import ConfigError, Settings
from gtm_pipeline.connect.tokens import TenantClients
from gtm_pipeline.errors import GtmError
from gtm_pipeline.salesforce.client import SalesforceClient
from gtm_pipeline.salesforce.crypto import TokenDecryptError
from gtm_pipeline.salesforce.errors import SalesforceClientError, SessionInvalid
from gtm_pipeline.salesforce.metadata import FieldInfo, MetadataError, describe_object
from gtm_pipeline.store.connections import get_connector
from gtm_pipeline.sync.entities import SCORED_ENTITIES, Entity, FieldMapping
from gtm_pipeline.sync.mapping import (
    MappingError,
    effective_mappings,
    related_describes,
    save_mappings,
    transform_names,
    validate_mappings,
)
from gtm_pipeline.web import identifiers
from gtm_pipeline.web.auth import Operator
from gtm_pipeline.web.csrf import CSRF_FIELD, csrf_matches
from gtm_pipeline.web.guards import read_form
from gtm_pipeline.web.mapping_form import (
    MappingFormError,
    MappingPage,
    MappingRow,
    overrides,
    parse_form,
    rows_for,
)
from gtm_pipeline.web.pages import message_page, render
from gtm_pipeline.web.routes import FORBIDDEN_FORM_MESSAGE, not_found, operator_required
from gtm_pipeline.web.writeback_form import (
    MAX_WRITEBACK_FORM_FIELDS,
    RESET,
    WritebackFormError,
    WritebackSection,
    parse_writeback_form,
    writeback_section,
)
from gtm_pipeline.writeback.mapping import (
    WritebackMappingError,
    is_default,
    load_allowed_standard,
    load_writeback_map,
    reset_writeback_map,
    save_writeback_map,
    validate_writeback_map,
)

log = logging.getLogger(__name__)

TenantClientFactory = Callable[[str], SalesforceClient]
"""Builds a Salesforce client for a connected tenant (its tokens refresh themselves)."""

MAPPING_PATH = "/connectors/{tenant}/mapping"
WRITEBACK_PATH = MAPPING_PATH + "/writeback"
DEFAULT_ENTITY = "persons"
MAPPED_ENTITIES = {e.name: e for e in SCORED_ENTITIES}
"""The entities the page maps both ways (sync and writeback): the scored ones."""
CONNECTED = "connected"
# Three inputs per row; generous for a few dozen custom fields, and bounds what a POST may make
# the server parse.
MAX_MAPPING_FORM_FIELDS = 400
NOT_SAVED = "The mapping was not saved"
WRITEBACK_NOT_SAVED = "The writeback mapping was not saved"


class TenantUnavailable(GtmError):
    """The tenant's fields cannot be read now; the status, heading and message say why."""

    def __init__(self, status_code: int, heading: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.heading = heading
        self.message = message


def tenant_clients(engine: sa.Engine, settings: Settings) -> TenantClientFactory:
    """Clients from the app's settings (SALESFORCE_* and the encryption key), made when a page
    needs the org: a missing setting is that page's error, not the app's."""
    return lambda tenant_id: TenantClients.from_settings(engine, settings).for_tenant(tenant_id)


# -- request helpers ---------------------------------------------------------------------------


def _engine(request: Request) -> sa.Engine:
    return request.app.state.web.engine


def _clients(request: Request) -> TenantClientFactory:
    return request.app.state.tenant_client


def _tenant_in_scope(request: Request, operator: Operator) -> str | None:
    try:
        tenant = identifiers.tenant_id(request.path_params["tenant"])
    except identifiers.InvalidIdentifier:
        return None
    return tenant if operator.may_access(tenant) else None


def _entity(request: Request) -> Entity | None:
    return MAPPED_ENTITIES.get(request.query_params.get("entity") or DEFAULT_ENTITY)


def _csrf_ok(operator: Operator, presented: object) -> bool:
    """Cookie sessions must echo their CSRF token; bearer calls carry no ambient credential."""
    return operator.session is None or csrf_matches(operator.session.csrf, presented)


# -- the org and the store ---------------------------------------------------------------------


def _connected_client(
    engine: sa.Engine, clients: TenantClientFactory, tenant_id: str
) -> SalesforceClient:
    with engine.connect() as conn:
        connector = get_connector(conn, tenant_id)
    if connector is None:
        raise TenantUnavailable(404, "Not found", "")
    if connector.status != CONNECTED:
        raise TenantUnavailable(
            409,
            "Salesforce is not connected",
            f"Tenant {tenant_id} is not connected to Salesforce right now, so its fields "
            "cannot be read. Connect it from the connectors page first.",
        )
    return clients(tenant_id)


@contextmanager
def _reading_org(tenant_id: str, sf_object: str) -> Iterator[None]:
    """Turn a failed read of the org into TenantUnavailable, in plain words."""
    try:
        yield
    except SessionInvalid as exc:
        raise TenantUnavailable(409, "Salesforce needs reconnecting", str(exc)) from None
    except TokenDecryptError:
        # The stored tokens do not open under this tenant and key: altered, copied from another
        # tenant, or sealed under another key. Only a new connection can replace them.
        log.warning("stored tokens of tenant %s cannot be decrypted", tenant_id)
        raise TenantUnavailable(
            409,
            "Salesforce needs reconnecting",
            "The stored connection for this tenant cannot be opened; connect Salesforce again.",
        ) from None
    except (SalesforceClientError, MetadataError) as exc:
        log.warning("describe %s for tenant %s failed: %s", sf_object, tenant_id, exc)
        raise TenantUnavailable(
            502,
            "Salesforce did not answer",
            f"Could not read the {sf_object} fields from Salesforce: {exc}. Try again in a moment.",
        ) from None
    except ConfigError as exc:
        raise TenantUnavailable(
            503, "Salesforce is not configured", f"The server cannot reach Salesforce: {exc}"
        ) from None


def _discover(
    engine: sa.Engine, clients: TenantClientFactory, tenant_id: str, entity: Entity, refresh: bool
) -> tuple[SalesforceClient, list[FieldInfo]]:
    """A client and the fields of the entity's object, or TenantUnavailable in plain words."""
    with _reading_org(tenant_id, entity.sf_object):
        client = _connected_client(engine, clients, tenant_id)
        return client, describe_object(client, entity.sf_object, refresh=refresh)


def _current_rows(engine: sa.Engine, tenant_id: str, entity: Entity) -> list[MappingRow]:
    with engine.connect() as conn:
        return rows_for(entity, effective_mappings(conn, tenant_id, entity.name))


def _validate_and_save(
    engine: sa.Engine,
    client: SalesforceClient,
    tenant_id: str,
    entity: Entity,
    mappings: list[FieldMapping],
    fields: list[FieldInfo],
) -> list[str]:
    """The save's warnings; MappingError, with nothing written, when any mapping is invalid.

    Dot paths are checked against the related objects' describes too (cached like any other).
    """
    try:
        related = related_describes(client, fields, mappings)
    except (SalesforceClientError, MetadataError) as exc:
        raise MappingError(f"the related objects' fields could not be read: {exc}") from None
    warnings = validate_mappings(
        entity.name, mappings, fields, tenant_id=tenant_id, related=related
    )
    with engine.begin() as conn:
        save_mappings(conn, tenant_id, entity.name, mappings)
    return warnings


def _current_writeback(
    engine: sa.Engine,
    tenant_id: str,
    entity: Entity,
    fields: list[FieldInfo],
    shown: Mapping[str, str] | None = None,
) -> WritebackSection:
    """The writeback form: the effective map, or `shown` (a refused submission) in its place."""
    entity_type = entity.score_type
    with engine.connect() as conn:
        field_map = load_writeback_map(conn, tenant_id, entity_type) if shown is None else shown
        default = is_default(conn, tenant_id, entity_type)
        allowed = load_allowed_standard(conn, tenant_id, entity_type)
    return writeback_section(
        entity, fields, field_map, is_default=default, allowed_standard=allowed
    )


def _validate_and_save_writeback(
    engine: sa.Engine,
    client: SalesforceClient,
    tenant_id: str,
    entity: Entity,
    field_map: Mapping[str, str],
) -> tuple[list[FieldInfo], str | None]:
    """Check the map against a fresh describe, then store it in one transaction.

    The describe is re-read (refresh), so a field deleted or made read-only since the page was
    rendered is refused. A standard field stored with `--allow-standard-field` stays allowed (and
    keeps its flag); the page cannot allow a new one. Returns the object's fields as just read,
    for the page shown next, and the reason the map was refused (nothing written then), or None
    once it is saved.
    """
    entity_type = entity.score_type
    with engine.connect() as conn:
        allowed = load_allowed_standard(conn, tenant_id, entity_type)
    with _reading_org(tenant_id, entity.sf_object):
        try:
            checked = validate_writeback_map(
                client, entity_type, field_map, refresh=True, allowed_standard=allowed
            )
        except WritebackMappingError as exc:
            return describe_object(client, entity.sf_object), str(exc)
        fields = describe_object(client, entity.sf_object)  # cached by the refresh above
    with engine.begin() as conn:
        save_writeback_map(conn, tenant_id, entity_type, checked, allowed_standard=allowed)
    return fields, None


def _reset_writeback(engine: sa.Engine, tenant_id: str, entity: Entity) -> None:
    with engine.begin() as conn:
        reset_writeback_map(conn, tenant_id, entity.score_type)


# -- responses ---------------------------------------------------------------------------------


def _page(
    operator: Operator,
    page: MappingPage,
    writeback: WritebackSection,
    status_code: int = 200,
    *,
    error: str | None = None,
    warnings: Sequence[str] = (),
    saved: bool = False,
    writeback_notice: str | None = None,
    writeback_error: str | None = None,
) -> Response:
    return render(
        "mapping.html",
        status_code,
        operator=operator,
        page=page,
        writeback=writeback,
        entities=list(MAPPED_ENTITIES),
        csrf_token=operator.session.csrf if operator.session else "",
        error=error,
        warnings=list(warnings),
        saved=saved,
        writeback_notice=writeback_notice,
        writeback_error=writeback_error,
    )


def _unavailable(request: Request, operator: Operator, exc: TenantUnavailable) -> Response:
    if exc.status_code == 404:
        return not_found(request, operator)
    return message_page(exc.heading, exc.message, exc.status_code, operator)


def _unknown_entity(operator: Operator) -> Response:
    return message_page(
        "Unknown entity", f"Choose one of: {', '.join(MAPPED_ENTITIES)}.", 400, operator
    )


# -- routes ------------------------------------------------------------------------------------


@operator_required
async def mapping_page(request: Request, operator: Operator) -> Response:
    tenant = _tenant_in_scope(request, operator)
    if tenant is None:
        return not_found(request, operator)
    entity = _entity(request)
    if entity is None:
        return _unknown_entity(operator)
    engine = _engine(request)
    refresh = request.query_params.get("refresh") == "1"
    try:
        _, fields = await run_in_threadpool(
            _discover, engine, _clients(request), tenant, entity, refresh
        )
    except TenantUnavailable as exc:
        return _unavailable(request, operator, exc)
    rows = await run_in_threadpool(_current_rows, engine, tenant, entity)
    writeback = await run_in_threadpool(_current_writeback, engine, tenant, entity, fields)
    page = MappingPage(tenant, entity, rows, fields, transform_names())
    return _page(operator, page, writeback)


@dataclass(frozen=True)
class _Post:
    """A mapping form post that passed scope, CSRF and entity checks, with the org's fields."""

    tenant: str
    entity: Entity
    form: FormData
    engine: sa.Engine
    client: SalesforceClient
    fields: list[FieldInfo]


async def _checked_post(request: Request, operator: Operator, max_fields: int) -> _Post | Response:
    """The post to act on, or the page refusing it (out of scope, stale form, org unreachable)."""
    tenant = _tenant_in_scope(request, operator)
    if tenant is None:
        return not_found(request, operator)
    form = await read_form(request, max_fields=max_fields)
    if not _csrf_ok(operator, form.get(CSRF_FIELD)):
        return message_page("Form expired", FORBIDDEN_FORM_MESSAGE, 403, operator)
    entity = _entity(request)
    if entity is None:
        return _unknown_entity(operator)
    engine = _engine(request)
    try:
        client, fields = await run_in_threadpool(
            _discover, engine, _clients(request), tenant, entity, False
        )
    except TenantUnavailable as exc:
        return _unavailable(request, operator, exc)
    return _Post(tenant, entity, form, engine, client, fields)


@operator_required
async def save_mapping(request: Request, operator: Operator) -> Response:
    post = await _checked_post(request, operator, MAX_MAPPING_FORM_FIELDS)
    if isinstance(post, Response):
        return post
    tenant, entity, form, engine = post.tenant, post.entity, post.form, post.engine
    client, fields = post.client, post.fields
    transforms = transform_names()
    writeback = await run_in_threadpool(_current_writeback, engine, tenant, entity, fields)
    try:
        rows, new_row = parse_form(entity, form.multi_items())
        mappings = overrides(rows, new_row)
    except MappingFormError as exc:
        current = await run_in_threadpool(_current_rows, engine, tenant, entity)
        page = MappingPage(tenant, entity, current, fields, transforms)
        return _page(operator, page, writeback, 400, error=f"{NOT_SAVED}: {exc}.")
    try:
        warnings = await run_in_threadpool(
            _validate_and_save, engine, client, tenant, entity, mappings, fields
        )
    except MappingError as exc:
        log.info("the %s mapping of tenant %s was refused: %s", entity.name, tenant, exc)
        page = MappingPage(tenant, entity, rows, fields, transforms, new_row)
        return _page(operator, page, writeback, 400, error=f"{NOT_SAVED}: {exc}")
    log.info(
        "operator credential %s saved the %s mapping of tenant %s (%d overrides)",
        operator.credential_id,
        entity.name,
        tenant,
        len(mappings),
    )
    current = await run_in_threadpool(_current_rows, engine, tenant, entity)
    page = MappingPage(tenant, entity, current, fields, transforms)
    return _page(operator, page, writeback, warnings=warnings, saved=True)


@operator_required
async def save_writeback_mapping(request: Request, operator: Operator) -> Response:
    """Save (checked against a fresh describe) or reset where the entity's scores are written."""
    post = await _checked_post(request, operator, MAX_WRITEBACK_FORM_FIELDS)
    if isinstance(post, Response):
        return post
    tenant, entity, form, engine = post.tenant, post.entity, post.form, post.engine
    client, fields = post.client, post.fields
    rows = await run_in_threadpool(_current_rows, engine, tenant, entity)
    try:
        action, field_map = parse_writeback_form(form.multi_items())
    except WritebackFormError as exc:
        page = MappingPage(tenant, entity, rows, fields, transform_names())
        writeback = await run_in_threadpool(_current_writeback, engine, tenant, entity, fields)
        return _page(
            operator, page, writeback, 400, writeback_error=f"{WRITEBACK_NOT_SAVED}: {exc}."
        )
    if action == RESET:
        await run_in_threadpool(_reset_writeback, engine, tenant, entity)
        notice = "Scores are written to the default fields again."
    else:
        try:
            fields, refused = await run_in_threadpool(
                _validate_and_save_writeback, engine, client, tenant, entity, field_map
            )
        except TenantUnavailable as exc:
            return _unavailable(request, operator, exc)
        if refused is not None:
            log.info("the %s writeback map of %s was refused: %s", entity.name, tenant, refused)
            page = MappingPage(tenant, entity, rows, fields, transform_names())
            writeback = await run_in_threadpool(
                _current_writeback, engine, tenant, entity, fields, field_map
            )
            error = f"{WRITEBACK_NOT_SAVED}: {refused}."
            return _page(operator, page, writeback, 400, writeback_error=error)
        notice = "Writeback mapping saved."
    log.info(
        "operator credential %s %s the %s writeback map of tenant %s",
        operator.credential_id,
        "reset" if action == RESET else "saved",
        entity.name,
        tenant,
    )
    page = MappingPage(tenant, entity, rows, fields, transform_names())
    writeback = await run_in_threadpool(_current_writeback, engine, tenant, entity, fields)
    return _page(operator, page, writeback, writeback_notice=notice)


def mapping_routes() -> list[Route]:
    return [
        Route(MAPPING_PATH, mapping_page, methods=["GET"]),
        Route(MAPPING_PATH, save_mapping, methods=["POST"]),
        Route(WRITEBACK_PATH, save_writeback_mapping, methods=["POST"]),
    ]
