#!/usr/bin/env python3
"""Build a latency LUT for this device: a thin wrapper over `hwnas profile`.

    python tools/profile_device.py --list
    python tools/profile_device.py --profiler ort-cpu --space mbv3 --out luts/my-ort-cpu.json

Interrupted? Run the same command again: it resumes from the saved entries.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from hwnas.app.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["profile", *sys.argv[1:]]))
