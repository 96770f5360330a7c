"""Salesforce record Ids: the 15-character base-62 form and its 18-character checksummed form.

The API only ever returns 18-character Ids, but accepts both forms as input, so the emulator
needs to check, extend and mint them exactly as Salesforce does.
"""

from __future__ import annotations

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CHECKSUM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62_SET = frozenset(BASE62)

KEY_PREFIXES = {
    "Account": "001",
    "Contact": "003",
    "Opportunity": "006",
    "Lead": "00Q",
    "Task": "00T",
    "Event": "00U",
    "User": "005",
    "Organization": "00D",
    "BulkJob": "750",
}

# The two characters after the key prefix name the pod/instance in real Ids.
_POD = "RO"


def checksum(id15: str) -> str:
    """The three suffix characters that make a 15-character Id case-insensitively unique."""
    if len(id15) != 15:
        raise ValueError("a 15-character Id is needed to compute a checksum")
    suffix = []
    for chunk_start in range(0, 15, 5):
        bits = 0
        for k, char in enumerate(id15[chunk_start : chunk_start + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << k
        suffix.append(_CHECKSUM_ALPHABET[bits])
    return "".join(suffix)


def to18(record_id: str) -> str:
    """The 18-character form of a valid 15- or 18-character Id; ValueError otherwise."""
    if not is_valid_id(record_id):
        raise ValueError("not a valid Salesforce Id")
    if len(record_id) == 18:
        return record_id
    return record_id + checksum(record_id)


def is_valid_id(value: object) -> bool:
    """True for a base-62 15-character Id, or an 18-character one whose checksum matches."""
    if not isinstance(value, str) or len(value) not in (15, 18):
        return False
    if not _BASE62_SET.issuperset(value[:15]):
        return False
    # Salesforce compares the checksum case-insensitively: that is its whole purpose.
    return len(value) == 15 or value[15:].upper() == checksum(value[:15])


def make_id(prefix: str, sequence: int) -> str:
    """An 18-character Id for the `sequence`-th record of the object with this key prefix."""
    return make_ids(prefix, sequence, 1)[0]


_PAIR_SPAN = 62 * 62


def _uppers(text: str) -> int:
    """Bit k set when character k is an upper-case letter (the checksum's rule)."""
    return sum(1 << k for k, char in enumerate(text) if "A" <= char <= "Z")


def make_ids(prefix: str, start: int, count: int) -> list[str]:
    """`count` consecutive 18-character Ids from sequence number `start`.

    Minting a million Ids one checksum at a time is slow, so the last two base-62 digits come
    from a table and everything else is computed once per 3,844 Ids.
    """
    if len(prefix) != 3 or not _BASE62_SET.issuperset(prefix):
        raise ValueError("a key prefix is three base-62 characters")
    if start < 0 or count < 0:
        raise ValueError("Id sequence numbers cannot be negative")
    if start + count > 62**7 * _PAIR_SPAN:
        raise ValueError("Id sequence number out of range")
    pairs = _pair_table()
    out: list[str] = []
    sequence, end = start, start + count
    while sequence < end:
        high, low = divmod(sequence, _PAIR_SPAN)
        head = prefix + _POD + "0" + _base62(high, 7)  # 13 characters
        first_two = _CHECKSUM_ALPHABET[_uppers(head[0:5])] + _CHECKSUM_ALPHABET[_uppers(head[5:10])]
        tail_bits = _uppers(head[10:13])
        block_end = min(end, (high + 1) * _PAIR_SPAN)
        for pair, bits in pairs[low : low + block_end - sequence]:
            out.append(head + pair + first_two + _CHECKSUM_ALPHABET[tail_bits | bits << 3])
        sequence = block_end
    return out


def _base62(value: int, width: int) -> str:
    digits = []
    for _ in range(width):
        value, rem = divmod(value, 62)
        digits.append(BASE62[rem])
    return "".join(reversed(digits))


_PAIR_CACHE: list[tuple[str, int]] = []


def _pair_table() -> list[tuple[str, int]]:
    if not _PAIR_CACHE:
        _PAIR_CACHE.extend((a + b, _uppers(a + b)) for a in BASE62 for b in BASE62)
    return _PAIR_CACHE


def key_prefix(record_id: str) -> str:
    """The key prefix (first three characters) naming the object an Id belongs to."""
    return record_id[:3]
