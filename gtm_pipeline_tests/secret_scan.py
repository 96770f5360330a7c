"""A pytest plugin that proves the suite never logs a secret.

Every log record of the session (root and Dagster loggers, DEBUG and up) and every test's captured
output is written to `test-artifacts/suite.log` (`suite-gw0.log`, ... in each pytest-xdist worker,
which runs the tests). The secrets the suite handles are remembered as they are made: each
emulator's client secret and control token, every encryption key and state secret given to the
cipher and signer. Access and refresh tokens are recognised by their shape (`00D...!AR...`,
`5Aep...`). At the end each worker sends the secrets it remembered to the controller (in memory,
through xdist's channel), and the controller searches every file of the run (a crashed worker's
too, which sent nothing) for every secret it was sent and for the token shapes, in one
Aho-Corasick pass per file; any hit fails the run.

Text a test sees without logging it (a page body fetched from the web app) is added to the same
file with `record_text(label, text)`, so it is scanned too; `secrets_in(text)` checks one text
right away, for a test that wants to fail at the page that leaked.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import ahocorasick
import pytest
import xdist

# GTM_SECRET_SCAN_DIR moves the files: a test that runs pytest inside the suite uses it, so its
# inner run cannot overwrite the outer run's files.
ARTIFACTS = Path(
    os.environ.get("GTM_SECRET_SCAN_DIR") or Path(__file__).resolve().parents[1] / "test-artifacts"
)
WORKER_KEY = "gtm_secret_scan"
TOKEN_SHAPES = {
    "access token": re.compile(r"\b[0-9A-Za-z]{15}!AR[0-9A-Za-z_\-]{40,}"),
    "refresh token": re.compile(r"\b5Aep[0-9A-Za-z_\-]{40,}"),
}
_remembered: dict[str, str] = {}
_handler: logging.Handler | None = None
_file = None
_artifact: Path | None = None
_worker_files: dict[str, Path] = {}
"""On the controller: the file of each worker of this run, by worker id."""
_automaton: tuple[tuple[int, int], Any] | None = None


def remember(kind: str, value: str | None) -> None:
    """Keep a secret to look for. Low-entropy values ("x" * 40) are a test's fixed data, which
    also shows up legitimately in test ids, so only random-looking values are kept."""
    if value and len(value) >= 16 and len(set(value)) >= 8:
        _remembered[value] = kind


def record_text(label: str, text: str) -> None:
    """Add text the suite saw but did not log (a response body) to the scanned artifact."""
    if _file is not None:
        _file.write(f"--- {label}\n{text}\n")


def _known_secrets() -> Any:
    """An Aho-Corasick automaton of the remembered secrets, rebuilt when a secret is added."""
    global _automaton
    version = (id(_remembered), len(_remembered))
    if _automaton is None or _automaton[0] != version:
        automaton = ahocorasick.Automaton()
        for value, kind in _remembered.items():
            automaton.add_word(value, (value, kind))
        automaton.make_automaton()
        _automaton = (version, automaton)
    return _automaton[1]


def secrets_in(text: str) -> dict[str, int]:
    """Kinds of secret found in `text` (known values and token shapes) and how many of each."""
    found: dict[str, int] = {}
    if _remembered:
        for kind in dict(match for _end, match in _known_secrets().iter(text)).values():
            found[kind] = found.get(kind, 0) + 1
    for kind, shape in TOKEN_SHAPES.items():
        hits = len(set(shape.findall(text)))
        if hits:
            found[kind] = found.get(kind, 0) + hits
    return found


def _instrument(monkeypatch: pytest.MonkeyPatch) -> None:
    """Wrap the constructors that receive secrets so each is remembered; behaviour unchanged."""
    from gtm_pipeline.connect.flow import FlowBinding
    from gtm_pipeline.emulator.server import EmulatorServer
    from gtm_pipeline.salesforce.crypto import TokenCipher
    from gtm_pipeline.salesforce.oauth_state import StateSigner

    start, cipher_init, signer_init, binding_new = (
        EmulatorServer.start,
        TokenCipher.__init__,
        StateSigner.__init__,
        FlowBinding.new,
    )

    def emulator_start(self, *args, **kwargs):
        info = start(self, *args, **kwargs)
        remember("emulator client secret", info.get("client_secret"))
        remember("emulator control token", info.get("control_token"))
        return info

    # Remembered only once accepted: a malformed key is test data, not a secret.
    def cipher(self, key_hex, *args, **kwargs):
        cipher_init(self, key_hex, *args, **kwargs)
        remember("encryption key", key_hex)

    def signer(self, secret, *args, **kwargs):
        signer_init(self, secret, *args, **kwargs)
        remember("state secret", secret)

    # The OAuth binding nonce lives in one browser's cookie: a credential for that flow.
    def binding(cls, operator_id):
        made = binding_new(operator_id)
        remember("oauth binding nonce", made.nonce)
        return made

    monkeypatch.setattr(EmulatorServer, "start", emulator_start)
    monkeypatch.setattr(FlowBinding, "new", classmethod(binding))
    monkeypatch.setattr(TokenCipher, "__init__", cipher)
    monkeypatch.setattr(StateSigner, "__init__", signer)


@pytest.fixture(scope="session", autouse=True)
def _secret_instrumentation():
    with pytest.MonkeyPatch.context() as monkeypatch:
        _instrument(monkeypatch)
        yield


def artifact_path(worker: str) -> Path:
    """`suite-gw0.log`, ... for a pytest-xdist worker; `suite.log` for the controller or a run
    without workers (both "master" to `xdist.get_xdist_worker_id`)."""
    return ARTIFACTS / ("suite.log" if worker == "master" else f"suite-{worker}.log")


def pytest_sessionstart(session: pytest.Session) -> None:
    global _handler, _file, _artifact
    _artifact = artifact_path(xdist.get_xdist_worker_id(session))
    _artifact.parent.mkdir(parents=True, exist_ok=True)
    _file = _artifact.open("w", encoding="utf-8", errors="replace")
    _handler = logging.StreamHandler(_file)
    _handler.setLevel(logging.DEBUG)
    _handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    for name in ("", "dagster"):
        logger = logging.getLogger(name)
        logger.addHandler(_handler)
        logger.setLevel(logging.DEBUG)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # On the controller, a worker's report (it carries its `node`) is in that worker's file.
    if _file is None or getattr(report, "node", None) is not None:
        return
    for title, text in report.sections:
        _file.write(f"--- {report.nodeid} {title}\n{text}\n")
    if report.longrepr is not None:
        _file.write(f"--- {report.nodeid} failure\n{report.longreprtext}\n")


def _scan(artifact: Path) -> tuple[int, dict[str, int]]:
    text = artifact.read_text(encoding="utf-8", errors="replace")
    return text.count("\n"), secrets_in(text)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodeready(node: Any) -> None:
    """On the controller: a worker of this run is up; its file is scanned at the end."""
    worker = node.workerinput["workerid"]
    _worker_files[worker] = artifact_path(worker)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """On the controller: the secrets a finished worker made, for the scan of every file."""
    _remembered.update(getattr(node, "workeroutput", {}).get(WORKER_KEY, {}))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _file
    if _file is None or _artifact is None:
        return
    for name in ("", "dagster"):
        logging.getLogger(name).removeHandler(_handler)
    _file.close()
    _file = None
    if xdist.is_xdist_worker(session):
        session.config.workeroutput[WORKER_KEY] = dict(_remembered)  # type: ignore[attr-defined]
        return
    files = [_artifact, *(path for path in _worker_files.values() if path.exists())]
    lines, found = 0, {}
    for artifact in files:
        file_lines, file_found = _scan(artifact)
        lines += file_lines
        for kind, hits in file_found.items():
            found[kind] = found.get(kind, 0) + hits
    session.config._gtm_secret_scan = {  # type: ignore[attr-defined]
        "files": len(files),
        "lines": lines,
        "checked": len(_remembered),
        "found": found,
    }
    if found and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    result = getattr(config, "_gtm_secret_scan", None)
    if result is None:
        return
    found = result["found"]
    summary = ", ".join(f"{n} {kind}(s)" for kind, n in sorted(found.items())) or "none"
    terminalreporter.write_line(
        f"secret scan: {result['lines']} log lines in {result['files']} file(s), "
        f"{result['checked']} known secrets and 2 token shapes checked; secrets found: {summary}"
    )
