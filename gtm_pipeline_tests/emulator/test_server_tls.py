"""Start-up, emulator.json, TLS verification and the loopback-only rule."""

from __future__ import annotations

import json
import os
import ssl
import stat
import threading
from pathlib import Path

import pytest
import requests
from cryptography import x509

from gtm_pipeline.emulator.server import EmulatorServer, EmulatorStartError
from gtm_pipeline.emulator.testing import CAPinnedSession


def test_emulator_json_has_the_connection_facts(emulator) -> None:
    info_path = emulator.server.info_path
    on_disk = json.loads(info_path.read_text())
    assert on_disk == emulator.info
    port = int(on_disk["instance_url"].rsplit(":", 1)[1])
    assert port > 0
    assert on_disk["login_url"] == on_disk["instance_url"] == f"https://127.0.0.1:{port}"
    assert on_disk["api_version"] == "59.0"
    assert Path(on_disk["ca_bundle"]).is_file()
    for secret in ("client_secret", "control_token"):
        assert len(on_disk[secret]) >= 32
    assert on_disk["client_id"].startswith("3MVG9")
    assert stat.S_IMODE(os.stat(info_path).st_mode) == 0o600


def test_secrets_are_fresh_per_start_or_as_given(start_emulator) -> None:
    first, second = start_emulator(), start_emulator()
    assert first.info["client_secret"] != second.info["client_secret"]
    assert first.info["control_token"] != second.info["control_token"]
    given = start_emulator(client_id="my-app", client_secret="s" * 40, control_token="t" * 40)
    assert (given.info["client_id"], given.info["client_secret"]) == ("my-app", "s" * 40)
    assert given.info["control_token"] == "t" * 40


def test_reprs_hide_secrets(emulator) -> None:
    texts = [repr(emulator), repr(emulator.server), repr(emulator.server.state)]
    texts += [repr(emulator.control), repr(emulator.server.state.oauth)]
    for text in texts:
        assert emulator.info["client_secret"] not in text
        assert emulator.info["control_token"] not in text


def test_server_certificate_is_signed_by_the_bundle_for_loopback_names(emulator) -> None:
    ca = x509.load_pem_x509_certificate(Path(emulator.info["ca_bundle"]).read_bytes())
    port = int(emulator.info["instance_url"].rsplit(":", 1)[1])
    pem = ssl.get_server_certificate(("127.0.0.1", port))
    cert = x509.load_pem_x509_certificate(pem.encode())
    assert cert.issuer == ca.subject
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert [str(a) for a in names.get_values_for_type(x509.IPAddress)][:1] == ["127.0.0.1"]
    # The key is owner-only; the CA key is never written.
    keyfile = Path(emulator.info["ca_bundle"]).with_name("server-key.pem")
    assert stat.S_IMODE(os.stat(keyfile).st_mode) == 0o600
    assert sorted(p.name for p in keyfile.parent.glob("*.pem")) == [
        "ca.pem",
        "server-cert.pem",
        "server-key.pem",
    ]


def test_requests_ca_bundle_env_beats_session_verify_but_not_the_pinned_session(emulator) -> None:
    """The production gotcha: with REQUESTS_CA_BUNDLE set, `session.verify` alone is ignored."""
    assert os.environ.get("REQUESTS_CA_BUNDLE")
    url = emulator.info["instance_url"] + "/services/data/v59.0/query?q=x"
    naive = requests.Session()
    naive.verify = emulator.info["ca_bundle"]
    with pytest.raises(requests.exceptions.SSLError):
        naive.get(url, timeout=10)
    pinned = CAPinnedSession(emulator.info["ca_bundle"])
    assert pinned.get(url, timeout=10).status_code == 401
    via_localhost = url.replace("127.0.0.1", "localhost")
    assert pinned.get(via_localhost, timeout=10).status_code == 401
    assert requests.get(url, verify=emulator.info["ca_bundle"], timeout=10).status_code == 401


def test_non_loopback_hosts_are_refused(small_org, tmp_path) -> None:
    with pytest.raises(EmulatorStartError, match="loopback"):
        EmulatorServer(small_org, tmp_path, host="0.0.0.0").start()  # noqa: S104 - the point


def test_a_taken_port_is_a_clear_error(emulator, small_org, tmp_path) -> None:
    port = int(emulator.info["instance_url"].rsplit(":", 1)[1])
    with pytest.raises(EmulatorStartError, match=f"127.0.0.1:{port}"):
        EmulatorServer(small_org, tmp_path, port=port).start()


def test_stop_releases_the_port_and_waits_for_nothing(small_org, tmp_path) -> None:
    server = EmulatorServer(small_org, tmp_path)
    info = server.start()
    session = CAPinnedSession(info["ca_bundle"])
    assert session.get(info["instance_url"] + "/nowhere", timeout=10).status_code == 404
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    stopper.join(timeout=3)  # an idle keep-alive client must not hold the stop up
    assert not stopper.is_alive()
    with pytest.raises(requests.exceptions.ConnectionError):
        CAPinnedSession(info["ca_bundle"]).get(info["instance_url"] + "/nowhere", timeout=5)
