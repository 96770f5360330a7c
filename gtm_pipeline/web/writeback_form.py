"""The mapping page's "Scores written to Salesforce" form, without HTTP.

One select per score field offers "not written" and the org's fields the writeback rule lets
hold the score (`candidate_fields` over the describe the page already read: custom, updateable,
no formula, key or compound part, a fitting type and scale), with the effective map
preselected. A standard field the tenant mapped with `mapping writeback set
--allow-standard-field` (stored with that flag) is offered for its score too, and keeps the flag
when the form is saved; the page never offers a standard field otherwise. A chosen field the
rule refuses is shown with the reason. A submitted form
is turned back into a score → field map here; whether each field really fits is decided by
`validate_writeback_map` against a fresh describe, not by this module, so a forged value is
refused there with its reason.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from gtm_pipeline.errors import GtmError
from gtm_pipeline.salesforce.metadata import FieldInfo, field_named
from gtm_pipeline.sync.entities import Entity
from gtm_pipeline.web.csrf import CSRF_FIELD
from gtm_pipeline.web.mapping_form import form_text
from gtm_pipeline.writeback.mapping import KIND, candidate_fields, map_problems
from gtm_pipeline.writeback.payloads import SCORE_FIELDS

SCORE = "score."
ACTION = "action"
SAVE, RESET = "save", "reset"
# The csrf token, the action and one select per score; a form with more is not this page's.
MAX_WRITEBACK_FORM_FIELDS = 2 + len(SCORE_FIELDS)


class WritebackFormError(GtmError, ValueError):
    """The submitted form is not one this page could have produced, or maps no score."""

    retryable = False


@dataclass(frozen=True)
class WritebackRow:
    """One score: the field chosen for it ("" = not written) and the fields that may hold it."""

    score_field: str
    selected: str
    candidates: list[FieldInfo]
    refused_because: str | None = None
    """Why the selected field may not hold the score, when the rule refuses it."""

    @property
    def kind(self) -> str:
        """What the score needs, in words ("a number", "text", "a datetime")."""
        return KIND[self.score_field]

    @property
    def selected_is_offered(self) -> bool:
        """False when the chosen field is not a candidate (deleted, read-only, a forged post)."""
        return not self.selected or any(f.name == self.selected for f in self.candidates)


@dataclass(frozen=True)
class WritebackSection:
    """Everything the writeback form shows: the object, one row per score, default or not."""

    entity_type: str
    sf_object: str
    rows: list[WritebackRow]
    is_default: bool


def writeback_section(
    entity: Entity,
    fields: list[FieldInfo],
    field_map: Mapping[str, str],
    *,
    is_default: bool,
    allowed_standard: Collection[str] = (),
) -> WritebackSection:
    """The form for `field_map` (the effective map, or what was submitted) over `fields`;
    `allowed_standard`: lower-cased standard fields the tenant chose on purpose (stored flag)."""
    rows = [
        _row(entity.sf_object, fields, score, field_map.get(score, ""), allowed_standard)
        for score in SCORE_FIELDS
    ]
    return WritebackSection(entity.score_type, entity.sf_object, rows, is_default)


def _row(
    sf_object: str,
    fields: list[FieldInfo],
    score: str,
    selected: str,
    allowed_standard: Collection[str],
) -> WritebackRow:
    candidates = candidate_fields(fields, score)
    if not selected or any(f.name == selected for f in candidates):
        return WritebackRow(score, selected, candidates)
    problems = map_problems(sf_object, fields, {score: selected}, allowed_standard)
    if problems:
        return WritebackRow(score, selected, candidates, problems[0])
    chosen = field_named(fields, selected)  # a standard field chosen on purpose, and passing
    return WritebackRow(score, selected, candidates + ([chosen] if chosen else []))


def _checked_items(items: Iterable[tuple[str, object]]) -> dict[str, str]:
    """The form as a dict; refuses repeated fields and fields the page never shows."""
    allowed = {CSRF_FIELD, ACTION, *(SCORE + score for score in SCORE_FIELDS)}
    form: dict[str, str] = {}
    for name, value in items:
        if name not in allowed:
            raise WritebackFormError("the form carried a field this page does not have")
        if name in form:
            raise WritebackFormError("the form carried a field twice")
        form[name] = form_text(name, value, WritebackFormError)
    return form


def parse_writeback_form(items: Iterable[tuple[str, object]]) -> tuple[str, dict[str, str]]:
    """The action (save or reset) and, for a save, the submitted score → field map.

    A score left out or set to "" is not written. A save that writes no score at all is
    refused: the defaults are what "Use the default fields" is for.
    """
    form = _checked_items(items)
    action = form.get(ACTION) or SAVE
    if action not in (SAVE, RESET):
        raise WritebackFormError(f"unknown action {action!r}; expected {SAVE} or {RESET}")
    field_map = {score: form[SCORE + score] for score in SCORE_FIELDS if form.get(SCORE + score)}
    if action == SAVE and not field_map:
        raise WritebackFormError("choose a field for at least one score, or use the default fields")
    return action, field_map
