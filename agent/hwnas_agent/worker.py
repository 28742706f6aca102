"""A fresh measuring process: pinned and thread-limited once, times the files it is told, then exits.

Started by the agent (one per client connection, or per chunk of a bundle) with ``python -m hwnas_agent.worker``;
JSON lines on stdin and stdout. A process that only measures may be pinned for its whole short life, and a new
one per batch sees the device fresh: a process caught in a slow spell does not spoil the next batch.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, Optional

from hwnas_agent import device


def python_command() -> list[str]:
    """How to start a Python for workers: ``HWNAS_AGENT_PYTHON`` (e.g. an emulator's wrapper) or this one."""
    cmd = os.environ.get("HWNAS_AGENT_PYTHON", "").strip()
    return shlex.split(cmd) if cmd else [sys.executable]


class Worker:
    """The agent's handle on one worker process."""

    def __init__(self, threads: int, pin: Any):
        env = dict(os.environ)
        here = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.proc = subprocess.Popen([*python_command(), "-m", "hwnas_agent.worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, text=True, bufsize=1)
        self.threads, self.pin = threads, pin
        try:
            self.pinning = self.call({"op": "prepare", "threads": threads, "pin": pin})["pinning"]
        except BaseException:  # not pinned as asked (a CPU this device lacks): no process is left behind
            self.close()
            raise

    def call(self, job: dict) -> dict:
        try:
            self.proc.stdin.write(json.dumps(job) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            code = self.proc.poll()
            raise WorkerDied(f"the measuring worker process died (exit code {code})")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise WorkerError(reply.get("error", "unknown worker error"))
        return reply

    def time(self, path: Path, settings: dict, sha256: Optional[str] = None) -> dict:
        """Time the model file at ``path``; with ``sha256`` the worker loads it only as a regular file (no link)
        whose bytes have that digest (what the agent checked may not be swapped before the worker opens it)."""
        return self.call({"op": "time", "path": str(path), "sha256": sha256, "settings": settings})

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


class WorkerError(RuntimeError):
    """The worker could not time a file (the model does not load, a provider is missing, ...): its message."""


class WorkerDied(RuntimeError):
    """The worker process is gone (killed, out of memory): the next request gets a new one."""


def _serve(stdin, stdout) -> None:
    from hwnas_agent.runner import time_model

    warnings.filterwarnings("ignore")
    pinning: Optional[str] = None
    for line in stdin:
        try:
            job = json.loads(line)
            if job.get("op") == "prepare":
                if pinning is None:
                    pinning = device.pin(job.get("pin"), int(job.get("threads", 1)))
                reply = {"ok": True, "pinning": pinning}
            elif job.get("op") == "time":
                m, providers = time_model(job["path"], job.get("settings") or {}, job.get("sha256"))
                reply = {"ok": True, "measurement": m.to_dict(), "providers": providers}
            else:
                reply = {"ok": False, "error": f"unknown worker job {job.get('op')!r}"}
        except Exception as e:  # reported to the agent, which answers the client; this process goes on
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        stdout.write(json.dumps(reply) + "\n")
        stdout.flush()


if __name__ == "__main__":
    _serve(sys.stdin, sys.stdout)
