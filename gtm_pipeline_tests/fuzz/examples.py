"""How many examples each property of the fuzz suite ran, for the end-of-run summary.

Each property calls `ran(name)` once per example; hypothesis's own statistics are per test and
only printed on request, so the suite keeps this one small counter instead.
"""

from __future__ import annotations

from collections import Counter

counts: Counter[str] = Counter()


def ran(name: str) -> None:
    counts[name] += 1


def summary() -> list[str]:
    """One line per property and a total, e.g. `FUZZ EXAMPLES: 4200 run`."""
    lines = [f"FUZZ EXAMPLES: {sum(counts.values())} run over {len(counts)} properties"]
    lines += [f"  {name}: {n}" for name, n in sorted(counts.items())]
    return lines
