"""deploy/appreciate.service: systemd accepts it, and it keeps the settings the daemon relies on."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "appreciate.service"
EXEC_START = "ExecStart=/opt/appreciate/bin/appreciate "


def directives(text: str) -> dict[str, dict[str, list[str]]]:
    """Each section's directives, every value of a repeated key kept in order."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_the_unit_sets_what_the_daemon_relies_on() -> None:
    service = directives(UNIT.read_text(encoding="utf-8"))["Service"]
    expected = {
        "Type": ["notify"],
        "NotifyAccess": ["main"],
        "WatchdogSec": ["60"],
        "Restart": ["on-failure"],
        "RestartSec": ["5"],
        "TimeoutStopSec": ["60"],
        "ExecReload": ["/bin/kill -HUP $MAINPID"],
        "User": ["appreciate"],
        "DynamicUser": ["yes"],
        "StateDirectory": ["appreciate"],
        "ConfigurationDirectory": ["appreciate"],
        "WorkingDirectory": ["/var/lib/appreciate"],
        "UMask": ["0077"],
        "CapabilityBoundingSet": [""],
        "SystemCallFilter": ["@system-service"],
        "SystemCallArchitectures": ["native"],
        "RestrictAddressFamilies": ["AF_UNIX AF_INET AF_INET6"],
        "LoadCredential": ["smtp-password:/etc/appreciate/smtp-password"],
        "Environment": ["PYTHONUNBUFFERED=1"],
        "ProtectSystem": ["strict"],
    }
    assert {key: service.get(key) for key in expected} == expected
    for flag in (
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "NoNewPrivileges",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectControlGroups",
        "RestrictNamespaces",
        "LockPersonality",
        "RestrictRealtime",
        "RestrictSUIDSGID",
    ):
        assert service.get(flag) == ["yes"], flag
    assert "MemoryDenyWriteExecute" not in service


def test_the_config_comes_before_the_run_command() -> None:
    service = directives(UNIT.read_text(encoding="utf-8"))["Service"]
    assert service["ExecStart"] == [
        "/opt/appreciate/bin/appreciate --config ${CONFIGURATION_DIRECTORY}/appreciate.toml run"
    ]


def test_the_unit_is_enabled_for_boot() -> None:
    assert directives(UNIT.read_text(encoding="utf-8"))["Install"] == {
        "WantedBy": ["multi-user.target"]
    }


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed here, so systemd cannot check the unit",
)
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    # verify insists that ExecStart's program exists; appreciate is not in /opt on a test
    # machine, so the copy runs this Python instead, with the same arguments.
    text = UNIT.read_text(encoding="utf-8")
    assert text.count(EXEC_START) == 1
    unit = tmp_path / "appreciate.service"
    unit.write_text(text.replace(EXEC_START, f"ExecStart={sys.executable} "), encoding="utf-8")
    result = subprocess.run(
        [str(shutil.which("systemd-analyze")), "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    print(result.stderr)
    about_unit = [
        line
        for line in result.stderr.splitlines()
        if str(unit) in line or "appreciate.service" in line
    ]
    assert about_unit == []
    assert result.returncode == 0
