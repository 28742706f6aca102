"""The real CLI in a process without the capabilities that let root ignore file permissions (tests run as root:
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH and CAP_FOWNER dropped from its bounding set with setpriv); skipped, with
the reason, where they cannot be dropped."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

DROP = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner"]


def _prefix() -> list[str]:
    if os.geteuid() != 0:
        return []  # permissions apply already
    if shutil.which("setpriv") is None:
        pytest.skip("running as root, and no setpriv to drop CAP_DAC_OVERRIDE: permissions would not apply")
    probe = subprocess.run([*DROP, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot drop capabilities here (setpriv: {probe.stderr.strip()})")
    return DROP


def run_cli_without_caps(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*_prefix(), sys.executable, "-m", "hwnas", *args], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, timeout=timeout)
