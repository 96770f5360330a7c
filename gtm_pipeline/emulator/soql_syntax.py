"""SOQL syntax: the tokenizer, the syntax tree and a recursive-descent parser.

The grammar is the subset a connector legitimately sends (see `soql.py` for what it means);
anything else is rejected as MALFORMED_QUERY with Salesforce's "unexpected token" wording, and
no input text, however hostile, raises anything but EmulatorError.

`SELECT COUNT() FROM ...` is the one aggregate: Salesforce's rules for it are MALFORMED_QUERY
here too (COUNT() must be the only element of the SELECT list, and cannot be used with ORDER BY).
`COUNT(field)` and the other aggregate functions are not in the grammar ("unexpected token: (").

A statement longer than `MAX_SOQL_LENGTH` (100,000) characters is refused before it is read, with
the MALFORMED_QUERY message Salesforce gives ("SOQL statements can not be longer than 100000
characters."). Over REST a GET that long never gets here: its URI is refused first (414, see
`head_limits`); Bulk API 2.0 jobs, whose SOQL travels in the body, meet this limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

from gtm_pipeline.emulator.errors import EmulatorError, malformed

MAX_NESTING = 50
MAX_SOQL_LENGTH = 100_000

KEYWORDS = frozenset(
    {
        "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC",
        "DESC", "NULLS", "FIRST", "LAST", "LIMIT", "OFFSET", "NULL", "TRUE", "FALSE", "GROUP",
        "HAVING", "WITH", "FOR", "USING", "INCLUDES", "EXCLUDES", "TYPEOF",
    }
)  # fmt: skip

# --- tokens ---------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})(?![\w:.])
  | (?P<number>[+-]?\d+(?:\.\d+)?)(?![\w.])
  | (?P<ident>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(?![\w.])
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),])
  | (?P<quote>')
    """,
    re.VERBOSE | re.ASCII,
)

_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", "'": "'", '"': '"', "\\": "\\"}


@dataclass(frozen=True)
class Token:
    kind: str  # ident, keyword, string, number, datetime, date, op, punct, eof
    text: str
    value: object = None
    like: str = ""  # for strings: the LIKE regex, with unescaped % and _ as wildcards


def tokenize(text: str) -> list[Token]:
    """Split SOQL into tokens; any character outside the grammar is MALFORMED_QUERY."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise malformed(f"unexpected token: {_shown(text[pos:])}")
        kind = match.lastgroup
        if kind == "quote":
            token, pos = _read_string(text, match.end())
            tokens.append(token)
            continue
        pos = match.end()
        lexeme = match.group()
        if kind == "ws":
            continue
        if kind == "ident" and lexeme.upper() in KEYWORDS:
            tokens.append(Token("keyword", lexeme, lexeme.upper()))
        elif kind == "number":
            tokens.append(Token("number", lexeme, _number(lexeme)))
        elif kind == "datetime":
            tokens.append(Token("datetime", lexeme, datetime_literal(lexeme)))
        elif kind == "date":
            tokens.append(Token("date", lexeme, _date_literal(lexeme)))
        else:
            tokens.append(Token(kind or "", lexeme, lexeme))
    tokens.append(Token("eof", "<EOF>"))
    return tokens


def _shown(rest: str) -> str:
    return rest.split(None, 1)[0][:40] if rest.strip() else rest[:1]


def _read_string(text: str, pos: int) -> tuple[Token, int]:
    start = pos - 1
    chars: list[str] = []
    pattern: list[str] = []
    while pos < len(text):
        char = text[pos]
        if char == "'":
            value = "".join(chars)
            return Token("string", text[start : pos + 1], value, "".join(pattern)), pos + 1
        if char == "\\":
            if pos + 1 >= len(text):
                break
            escaped = text[pos + 1]
            if escaped in "%_":
                chars.append(escaped)
                pattern.append(re.escape(escaped))
            elif escaped in _ESCAPES:
                chars.append(_ESCAPES[escaped])
                pattern.append(re.escape(_ESCAPES[escaped]))
            else:
                raise malformed(f"Invalid string literal '{text[start : pos + 2]}'. Illegal escape")
            pos += 2
            continue
        chars.append(char)
        pattern.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        pos += 1
    raise malformed(f"unexpected token: {_shown(text[start:])} (unterminated string literal)")


def _number(lexeme: str) -> int | float:
    try:
        return float(lexeme) if "." in lexeme else int(lexeme)
    except ValueError as exc:  # e.g. more digits than Python converts
        raise malformed(f"Invalid number: {lexeme[:40]}") from exc


_DT = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?(?:Z|([+-])(\d{2}):?(\d{2}))",
    re.ASCII,
)


def datetime_literal(lexeme: str) -> str:
    """A datetime literal as the canonical stored form, converted to UTC."""
    match = _DT.fullmatch(lexeme)
    if match is None:  # pragma: no cover - the tokenizer only hands over matching text
        raise malformed(f"Invalid datetime: {lexeme}")
    year, month, day, hour, minute, second, millis, sign, off_h, off_m = match.groups()
    try:
        offset = timedelta(0)
        if sign:
            offset = timedelta(hours=int(off_h), minutes=int(off_m))
            offset = -offset if sign == "-" else offset
        value = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int((millis or "0").ljust(3, "0")) * 1000,
            tzinfo=timezone(offset),
        )
        return format_datetime(value)
    except (ValueError, OverflowError) as exc:
        raise malformed(f"Invalid datetime: {lexeme}") from exc


def _date_literal(lexeme: str) -> str:
    try:
        return date.fromisoformat(lexeme).isoformat()
    except ValueError as exc:
        raise malformed(f"Invalid date: {lexeme}") from exc


def format_datetime(value: datetime) -> str:
    """The wire (and stored) form of a datetime: UTC, milliseconds, `+0000`."""
    utc = value.astimezone(UTC)
    # Not strftime("%Y"): it drops the leading zeros of years before 1000.
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}+0000"


# --- syntax tree ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Path:
    parts: tuple[str, ...]

    @property
    def text(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class Literal:
    kind: str  # string, number, datetime, date, boolean, null
    value: object
    text: str
    like: str = ""


@dataclass(frozen=True)
class Compare:
    path: Path
    op: str
    literal: Literal


@dataclass(frozen=True)
class InList:
    path: Path
    negated: bool
    literals: tuple[Literal, ...]


@dataclass(frozen=True)
class Like:
    path: Path
    literal: Literal


@dataclass(frozen=True)
class Not:
    inner: Expr


@dataclass(frozen=True)
class BoolOp:
    op: str  # AND or OR
    items: tuple[Expr, ...]


Expr = Compare | InList | Like | Not | BoolOp


@dataclass(frozen=True)
class OrderItem:
    path: Path
    descending: bool
    nulls_first: bool


@dataclass(frozen=True)
class Query:
    select: tuple[Path, ...]  # empty for SELECT COUNT()
    sobject: str
    where: Expr | None
    order_by: tuple[OrderItem, ...]
    limit: int | None
    offset: int | None
    is_count: bool = False  # SELECT COUNT(): the number of matching rows, not the rows


# --- parser ---------------------------------------------------------------------------------


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def next(self) -> Token:
        token = self.tokens[self.pos]
        if token.kind != "eof":
            self.pos += 1
        return token

    def unexpected(self, token: Token | None = None) -> EmulatorError:
        token = token or self.peek()
        return malformed(f"unexpected token: {token.text}")

    def is_keyword(self, *words: str) -> bool:
        token = self.peek()
        return token.kind == "keyword" and token.value in words

    def is_punct(self, char: str, ahead: int = 0) -> bool:
        token = self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]
        return token.kind == "punct" and token.text == char

    def is_count(self) -> bool:
        """At `COUNT()` (COUNT is a name, not a reserved word; `COUNT(field)` is not this)."""
        token = self.peek()
        return (
            token.kind == "ident"
            and token.text.upper() == "COUNT"
            and self.is_punct("(", 1)
            and self.is_punct(")", 2)
        )

    def expect_keyword(self, word: str) -> None:
        if not self.is_keyword(word):
            raise self.unexpected()
        self.next()

    def expect_punct(self, char: str) -> None:
        if not self.is_punct(char):
            raise self.unexpected()
        self.next()

    def path(self) -> Path:
        token = self.next()
        if token.kind != "ident":
            raise self.unexpected(token)
        return Path(tuple(token.text.split(".")))

    def query(self) -> Query:
        self.expect_keyword("SELECT")
        select, is_count = self.select_list()
        self.expect_keyword("FROM")
        sobject = self.next()
        if sobject.kind != "ident" or "." in sobject.text:
            raise self.unexpected(sobject)
        where = None
        if self.is_keyword("WHERE"):
            self.next()
            where = self.condition(0)
        order: list[OrderItem] = []
        if self.is_keyword("ORDER"):
            self.next()
            self.expect_keyword("BY")
            order.append(self.order_item())
            while self.is_punct(","):
                self.next()
                order.append(self.order_item())
        if is_count and order:
            raise malformed("COUNT() and ORDER BY may not be used together.")
        limit = self.count_clause("LIMIT")
        offset = self.count_clause("OFFSET")
        if self.peek().kind != "eof":
            raise self.unexpected()
        return Query(select, sobject.text, where, tuple(order), limit, offset, is_count)

    def select_list(self) -> tuple[tuple[Path, ...], bool]:
        """The selected paths, and whether the list is `COUNT()`, which must stand alone."""
        paths: list[Path] = []
        count_items = 0
        while True:
            if self.is_count():
                self.pos += 3  # COUNT ( )
                count_items += 1
            else:
                paths.append(self.path())
            if not self.is_punct(","):
                break
            self.next()
        if count_items and (paths or count_items > 1):
            raise malformed("COUNT() must be the only element in the SELECT list")
        return tuple(paths), count_items > 0

    def count_clause(self, word: str) -> int | None:
        if not self.is_keyword(word):
            return None
        self.next()
        token = self.next()
        if token.kind != "number" or not isinstance(token.value, int) or token.value < 0:
            raise self.unexpected(token)
        return token.value

    def order_item(self) -> OrderItem:
        path = self.path()
        descending = False
        if self.is_keyword("ASC", "DESC"):
            descending = self.next().value == "DESC"
        nulls_first = True  # Salesforce sorts nulls first unless told otherwise
        if self.is_keyword("NULLS"):
            self.next()
            if not self.is_keyword("FIRST", "LAST"):
                raise self.unexpected()
            nulls_first = self.next().value == "FIRST"
        return OrderItem(path, descending, nulls_first)

    def condition(self, depth: int) -> Expr:
        """A chain of one kind of logical operator; SOQL demands parentheses to mix them."""
        items = [self.unary(depth)]
        joiner: str | None = None
        while self.is_keyword("AND", "OR"):
            word = str(self.peek().value)
            if joiner is not None and word != joiner:
                raise self.unexpected()
            joiner = word
            self.next()
            items.append(self.unary(depth))
        return items[0] if joiner is None else BoolOp(joiner, tuple(items))

    def unary(self, depth: int) -> Expr:
        if depth > MAX_NESTING:
            raise malformed("The WHERE clause is nested too deeply")
        if self.is_keyword("NOT"):
            self.next()
            return Not(self.unary(depth + 1))
        if self.is_punct("("):
            self.next()
            inner = self.condition(depth + 1)
            self.expect_punct(")")
            return inner
        return self.simple()

    def simple(self) -> Expr:
        path = self.path()
        token = self.peek()
        if token.kind == "op":
            self.next()
            op = "!=" if token.text == "<>" else token.text
            return Compare(path, op, self.literal())
        if self.is_keyword("LIKE"):
            self.next()
            literal = self.literal()
            if literal.kind != "string":
                raise self.unexpected(Token("x", literal.text))
            return Like(path, literal)
        negated = False
        if self.is_keyword("NOT"):
            self.next()
            negated = True
            if not self.is_keyword("IN"):
                raise self.unexpected()
        if self.is_keyword("IN"):
            self.next()
            self.expect_punct("(")
            values = [self.literal()]
            while self.is_punct(","):
                self.next()
                values.append(self.literal())
            self.expect_punct(")")
            return InList(path, negated, tuple(values))
        raise self.unexpected()

    def literal(self) -> Literal:
        token = self.next()
        if token.kind in ("string", "number", "datetime", "date"):
            return Literal(token.kind, token.value, token.text, token.like)
        if token.kind == "keyword" and token.value in ("TRUE", "FALSE"):
            return Literal("boolean", token.value == "TRUE", token.text)
        if token.kind == "keyword" and token.value == "NULL":
            return Literal("null", None, token.text)
        raise self.unexpected(token)


def parse(text: str) -> Query:
    """Parse SOQL text; anything outside the supported grammar raises EmulatorError."""
    if not isinstance(text, str) or not text.strip():
        raise malformed("A query is required")
    if len(text) > MAX_SOQL_LENGTH:
        raise malformed(f"SOQL statements can not be longer than {MAX_SOQL_LENGTH} characters.")
    return _Parser(tokenize(text)).query()
