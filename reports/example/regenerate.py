"""Regenerate the shipped example report: the default fleet planned as a new user would
(`hetsim plan --fleet scenarios/fleet.yaml`), written into this folder.

    python reports/example/regenerate.py

The report's date is pinned (SOURCE_DATE_EPOCH) so that regenerating with unchanged inputs
changes no byte of the HTML and Markdown; run it after any change to the planner, the
performance model, the profiles or the report, and commit the result with that change.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PINNED_DATE = "1764892800"  # 2025-12-05 00:00 UTC: reports carry a date; this one is fixed


def main() -> int:
    env = {**os.environ, "SOURCE_DATE_EPOCH": PINNED_DATE}
    command = [sys.executable, "-m", "hetsim", "plan", "--fleet", "scenarios/fleet.yaml",
               "--out", str(HERE / "plan.yaml"), "--report", str(HERE)]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, env=env, check=False)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
