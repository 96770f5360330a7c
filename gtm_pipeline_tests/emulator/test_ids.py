"""Record Ids: the reference's checksum vectors and the minting the generator relies on."""

from __future__ import annotations

import pytest

from gtm_pipeline.emulator import ids


@pytest.mark.parametrize(
    ("id15", "id18"),
    [
        ("a01M00000062mPg", "a01M00000062mPgIAI"),
        ("001M000000qfPyS", "001M000000qfPySIAU"),
        ("aBcDEfgHIJKLMNO", "aBcDEfgHIJKLMNO025"),
    ],
)
def test_reference_checksum_vectors(id15: str, id18: str) -> None:
    assert ids.checksum(id15) == id18[15:]
    assert ids.to18(id15) == id18
    assert ids.to18(id18) == id18


def test_validity_rules() -> None:
    assert ids.is_valid_id("001M000000qfPyS")
    assert ids.is_valid_id("001M000000qfPySIAU")
    assert ids.is_valid_id("001M000000qfPySiau")  # the checksum is case-insensitive
    assert not ids.is_valid_id("001M000000qfPySAAA")  # wrong checksum
    assert not ids.is_valid_id("001M000000qfPy")  # 14 characters
    assert not ids.is_valid_id("001M00000-qfPyS")  # not base 62
    assert not ids.is_valid_id(None)
    with pytest.raises(ValueError, match="not a valid Salesforce Id"):
        ids.to18("nope")


def test_minted_ids_are_consecutive_valid_and_unique_across_table_blocks() -> None:
    start = 3_844 * 5 - 100  # straddles a block of the two-digit table
    batch = ids.make_ids("003", start, 300)
    assert batch == [ids.make_id("003", start + k) for k in range(300)]
    assert len(set(batch)) == 300
    for record_id in batch:
        assert len(record_id) == 18
        assert record_id.startswith("003")
        assert record_id[15:] == ids.checksum(record_id[:15])
    assert batch == sorted(batch)  # minted in base-62 order, like creation order


def test_minting_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="key prefix"):
        ids.make_id("0x", 1)
    with pytest.raises(ValueError, match="negative"):
        ids.make_id("001", -1)
    with pytest.raises(ValueError, match="out of range"):
        ids.make_id("001", 62**9)
