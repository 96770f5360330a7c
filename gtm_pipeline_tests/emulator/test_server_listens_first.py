"""emulator.json appears only once the port accepts connections (no "connection refused" for a
client that starts as soon as it sees the file, as the README tells clients to)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gtm_pipeline.emulator import server
from gtm_pipeline.emulator.org import Org


def test_the_port_accepts_connections_when_emulator_json_is_written(tmp_path, monkeypatch):
    connected: list[bool] = []
    write_info = server.write_info

    def write_and_connect(state_dir: Path, info: dict[str, Any]) -> Path:
        path = write_info(state_dir, info)
        where = urlsplit(info["instance_url"])
        try:
            with socket.create_connection((where.hostname, where.port), timeout=5):
                connected.append(True)
        except ConnectionRefusedError:
            connected.append(False)
        return path

    monkeypatch.setattr(server, "write_info", write_and_connect)
    org = Org.generate(seed=1, counts={"Account": 1, "Contact": 1, "Opportunity": 1})
    with server.EmulatorServer(org, tmp_path / "emulator"):
        pass
    assert connected == [True]
