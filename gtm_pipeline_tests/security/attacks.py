"""The attack tally: every attack case the suite tries, and how many of them got through.

`attempt(kind)` wraps one attack case. The block holds the attack and the assertions that it was
refused; an AssertionError escaping the block means the attack succeeded, which is counted (and
re-raised, so the test fails). `run_summary` prints the totals at the end of the run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

tried: Counter[str] = Counter()
succeeded: Counter[str] = Counter()


@contextmanager
def attempt(kind: str) -> Iterator[None]:
    """Count one attack case of `kind`; an assertion failing inside it counts as a success."""
    tried[kind] += 1
    try:
        yield
    except AssertionError:
        succeeded[kind] += 1
        raise


def summary() -> str:
    """`ATTACKS: N tried, M succeeded` and the count per kind."""
    total, hits = sum(tried.values()), sum(succeeded.values())
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(tried.items()))
    line = f"ATTACKS: {total} tried, {hits} succeeded"
    if hits:
        line += " (" + ", ".join(f"{k} {n}" for k, n in sorted(succeeded.items())) + ")"
    return f"{line}\n  by kind: {kinds}" if kinds else line
