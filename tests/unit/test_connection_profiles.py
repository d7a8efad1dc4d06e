"""The connection profile file (~/.carve/connections.yaml) holds passwords: whatever is wrong
with it, the error names the file and line and never shows its text, through `carve run` as a
user sees it (exit status 1, one line, no traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs import cli

PASSWORD = "pr0file-s3cret-9f2b"
ROOT = Path(__file__).resolve().parents[2]
MAPPING = ROOT / "tests/data/mappings/valid/minimal.yaml"

BROKEN = {
    # an unclosed quote on the password's own line: the YAML parser quotes the line it stops at
    "unclosed_quote": f'connections:\n  shop:\n    url: jdbc:postgresql://127.0.0.1/shop\n    password: "{PASSWORD}\n',
    # a tab where YAML wants spaces, right after the password
    "tab_indent": f"connections:\n  shop:\n    password: {PASSWORD}\n\turl: x\n",
    # a flow map that never closes
    "unclosed_map": f"connections: {{shop: {{url: jdbc:postgresql://h/db, password: {PASSWORD}\n",
    # not text at all
    "binary": None,
}


@pytest.fixture
def carve(monkeypatch, capsys, tmp_path):
    for name in ("URL", "USER", "PASSWORD", "SECRET_ID", "GLUE_CONNECTION"):
        monkeypatch.delenv(f"CARVE_CONNECTION_SHOP_{name}", raising=False)

    def run(profile_text: str | None) -> tuple[int, str]:
        profile = tmp_path / "connections.yaml"
        if profile_text is None:
            profile.write_bytes(b"connections:\n  shop:\n    password: " + PASSWORD.encode() + b"\xff\xfe\n")
        else:
            profile.write_text(profile_text, encoding="utf-8")
        monkeypatch.setenv("CARVE_PROFILES", str(profile))
        status = cli.main(["run", str(MAPPING), "--report-dir", str(tmp_path / "report")])
        out, err = capsys.readouterr()
        return status, out + err

    return run


@pytest.mark.parametrize("case", BROKEN, ids=str)
def test_a_broken_profile_file_never_shows_the_password(carve, case, tmp_path):
    status, output = carve(BROKEN[case])
    assert status == 1
    assert PASSWORD not in output
    assert "Traceback" not in output
    assert str(tmp_path / "connections.yaml") in output
    # the failed run's report says why, without the password either
    report = (tmp_path / "report" / "report.json").read_text(encoding="utf-8")
    assert '"status": "failed"' in report and PASSWORD not in report
