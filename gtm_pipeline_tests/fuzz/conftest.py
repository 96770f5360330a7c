"""The fuzz suite: hypothesis properties, `scaled(200, 10_000)` examples each (quick/full mode).

At the end of the run the number of examples each property ran is printed (`FUZZ EXAMPLES: ...`).
"""

from __future__ import annotations

from gtm_pipeline_tests.fuzz import examples


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if examples.counts:
        for line in examples.summary():
            terminalreporter.write_line(line)
