"""Run the CLI in a subprocess on a project root, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """clubjapon-ops ARGS with CLUBJAPON_HOME=home and no operator settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CLUBJAPON_", "HUBSPOT_", "BREVO_", "SMTP_", "SENDGRID_"))}
    env["CLUBJAPON_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "clubjapon_ops", "--log-text", *args],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
