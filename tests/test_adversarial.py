"""The short adversarial run (scripts/adversarial.py --short, under 30 s): honest
clients lose nothing while the server is attacked, every attack gets the
documented answer, and the server's memory stays under a stated bound."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: the server process's peak RSS during the short run must stay under this
#: (measured: about 45 MiB; the server idles at about 31 MiB)
PEAK_RSS_BOUND_MIB = 128


def test_short_adversarial_run(tmp_path: Path) -> None:
    report_path = tmp_path / "adversarial.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "adversarial.py"), "--short", "--json", str(report_path)],
        capture_output=True, text=True, timeout=90, env=env,
    )
    print(run.stdout)
    report = json.loads(report_path.read_text())

    honest = report["honest"]
    assert honest["sent"] > 1000
    assert honest["received"] == honest["sent"], "honest messages were lost"
    assert honest["mismatched"] == 0 and honest["failures"] == []

    attacks = {name: entry for name, entry in report["attacks"].items() if not name.startswith("_")}
    assert len(attacks) == 13
    for name, entry in attacks.items():
        assert entry["as documented"], f"{name}: {entry}"
    assert all(report["server-side checks"].values()), report["server-side checks"]

    assert report["server RSS MiB"]["peak"] < PEAK_RSS_BOUND_MIB
    assert report["graceful shutdown"]["exit code"] == 0
    assert run.returncode == 0, run.stdout + run.stderr
