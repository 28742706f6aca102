"""ORT profilers timing on a device through its agent (``--device tcp://HOST:PORT --token-file FILE``).

The host exports (and, for ort-mobile, converts) each model as it does for local timing and sends the file;
the agent times it with the same timing policy in a fresh worker process on the device (one per connection,
so each of hwnas's isolated measuring processes is a fresh process there too) and returns the measurement.
The fingerprint is the device's, so a LUT built this way says which device it describes, and a later
``--device`` command that reaches another device is warned about, as any foreign measurement is.

Transports. A ``--device`` value names one by its scheme, and :func:`device_link` is the one place that maps a
scheme to a class; every class has the three methods of :class:`DeviceLink` and nothing else of hwnas knows
which one it talks to. Built: ``tcp://HOST:PORT`` (:class:`RemoteDevice`, a live agent) and ``timings:FILE``
(:class:`ReplayDevice`, an offline bundle's timings; hwnas.measuring.isolate hands those back per item, the
batch hook for a transport that times a whole list at once). Not built: ``adb://SERIAL`` (docs/profiling.md,
"A phone over adb" says what a user does today). It would go in :func:`device_link` as a class with the same
three methods, in one of two shapes: per model (``time``: ``adb push`` the file, ``adb shell`` the agent's
``python -m hwnas_agent`` or the runtime's own benchmark binary, parse its result into a Measurement), or per
batch, as ``timings:`` does (push an exported bundle, ``adb shell hwnas-agent run``, ``adb pull`` the timings,
replay them), which costs one adb round trip per batch instead of per block.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from hwnas.profilers._common import BaseProfiler
from hwnas.profilers.base import Measurement, ProfilerConfigError, ProfilerUnavailable

DEVICE_PINNING = "pinned on the device (the agent's rule: its last CPU)"


class DeviceLink(Protocol):
    """What a transport gives the file profilers (ort-cpu, ort-mobile, openvino-cpu, litert-cpu: ``profiler.remote``)."""

    url: str  # how the device is named in messages and in the LUT's settings["transport"]

    def unreachable(self) -> str | None:
        """None when the device answers (checked once, before any work), else why not and what to do."""

    def fingerprint(self) -> dict[str, Any]:
        """The device's fingerprint (hwnas_agent.device.fingerprint's fields): the LUT records it."""

    def time(self, data: bytes, settings: dict[str, Any], reference: bytes | None = None) -> Measurement:
        """Time one model file (``data``: ONNX or ORT bytes) as ``settings`` say (:func:`remote_settings`);
        ``reference``: a network timed in alternation with it (paired measurement). Raises
        ProfilerUnavailable when the device goes away (the command stops, and the same command resumes)."""


class RemoteDevice:
    """A profiler's link to one agent: connects lazily, once per process (one fresh worker on the device)."""

    def __init__(self, url: str, token_file: str | Path | None):
        from hwnas_agent.client import parse_url
        from hwnas_agent.protocol import read_token

        if not token_file:
            raise ProfilerConfigError(f"--device {url} needs --token-file FILE (the agent's shared token)")
        try:  # a malformed URL or an unreadable token is bad input now, not a connection error later
            parse_url(url)
            read_token(token_file)
        except ValueError as e:
            raise ProfilerConfigError(str(e)) from None
        self.url, self.token_file = url, str(token_file)
        self._client = None
        self._fingerprint: dict[str, Any] | None = None

    def client(self):
        from hwnas_agent.client import AgentClient

        if self._client is None:
            self._client = AgentClient(self.url, self.token_file)
        return self._client.connect()

    def unreachable(self) -> str | None:
        """None when the agent answers and accepts our token, else why not."""
        from hwnas_agent.client import AgentError

        try:
            self.fingerprint()
        except (AgentError, ValueError) as e:
            return str(e)
        return None

    def fingerprint(self) -> dict[str, Any]:
        if self._fingerprint is None:
            self._fingerprint = self.client().fingerprint()
        return dict(self._fingerprint)

    def time(self, data: bytes, settings: dict[str, Any], reference: bytes | None = None) -> Measurement:
        from hwnas_agent.client import AgentError

        try:
            reply = self.client().time(data, settings, reference)
        except AgentError as e:
            raise ProfilerUnavailable(str(e)) from None
        return Measurement(**reply["measurement"])


REPLAY = "timings:"  # device=timings:FILE: the timings an agent wrote for an offline bundle (hwnas.measuring.bundle)


class ReplayDevice:
    """The device of an offline bundle, seen through the timings file its agent wrote: its fingerprint, and
    the measurements, which hwnas.measuring.isolate hands back per item (blocks by key, networks by arch id)."""

    def __init__(self, path: str | Path):
        import json

        self.path = Path(path)
        self.url = f"offline bundle timings {self.path.name}"
        try:
            self.timings = json.loads(self.path.read_text())
        except (OSError, ValueError) as e:
            raise ProfilerConfigError(f"cannot read the timings file {str(self.path)!r}: {e}") from None
        if not isinstance(self.timings, dict) or self.timings.get("format") != "hwnas-timings":
            raise ProfilerConfigError(f"{self.path} is not a timings file of hwnas-agent run")

    def unreachable(self) -> str | None:
        return None

    def fingerprint(self) -> dict[str, Any]:
        return dict(self.timings["device"])

    def exported_with(self) -> dict[str, Any]:
        """The profiler settings the bundle was exported with (e.g. which converter made its files)."""
        manifest = self.timings.get("manifest")
        settings = manifest.get("profiler_settings") if isinstance(manifest, dict) else None
        return dict(settings) if isinstance(settings, dict) else {}

    def time(self, data: bytes, settings: dict[str, Any], reference: bytes | None = None) -> Measurement:
        raise ProfilerUnavailable(f"{self.path} holds the timings of its bundle only; this model is not in it "
                                  f"(export a bundle that has it: hwnas profile ... --export-bundle DIR)")


ADB = "adb:"
ADB_NOT_BUILT = ("an adb transport is not built yet. Today, with the agent in a Python on the phone (Termux): "
                 "`adb forward tcp:7878 tcp:7878` and --device tcp://127.0.0.1:7878 --token-file FILE, or an "
                 "offline bundle (hwnas profile ... --export-bundle DIR, then adb push, hwnas-agent run, adb pull); "
                 "the commands: docs/profiling.md, 'A phone over adb'")


def device_link(device: str, token_file: str | Path | None) -> DeviceLink:
    """The transport ``device`` names: ``tcp://HOST:PORT`` a live agent, ``timings:FILE`` an offline bundle's
    timings. A new transport (``adb://SERIAL``) is one more scheme here (see the module's docstring)."""
    if device.startswith(REPLAY):
        return ReplayDevice(device[len(REPLAY):])
    if device.startswith(ADB):
        raise ProfilerConfigError(f"--device {device}: {ADB_NOT_BUILT}")
    return RemoteDevice(device, token_file)


def remote_settings(profiler: Any, fmt: str) -> dict[str, Any]:
    """What the agent needs to time as ``profiler`` would here: threads, pinning, format, policy, and the runtime's
    own settings (``runtime_settings()``: optimisation and providers for ORT, the XNNPACK switch for LiteRT)."""
    return {"threads": profiler.threads, "pin": "auto" if profiler.remote_pinned else None,
            **profiler.runtime_settings(), "format": fmt, "policy": asdict(profiler.policy)}


class DeviceFileProfiler(BaseProfiler):
    """A profiler of model files that times them here or, with ``device``, on that device's agent (a transport of
    :func:`device_link`): the link, the pinning said of the device, the device's fingerprint. Subclasses give
    ``runtime_settings`` and ``model_file``; ``runtime`` names the field of the agent's ``runtimes`` that must be
    set for the device to time this profiler's files (None: onnxruntime, which every agent has)."""

    runtime: str | None = None

    def __init__(self, threads: int = 1, pin_cpu: int | None = None, policy: Any = None, device: str | None = None,
                 token_file: str | None = None):
        self.remote = device_link(device, token_file) if device else None
        self.remote_pinned = pin_cpu is not None
        super().__init__(threads, None if self.remote else pin_cpu, policy)
        if self.remote is not None:
            self._pinning = DEVICE_PINNING if self.remote_pinned else "not pinned"

    def runtime_settings(self) -> dict[str, Any]:
        return {}

    def device_problem(self) -> str | None:
        """None when there is no device or it can time this profiler's files, else why not."""
        if self.remote is None:
            return None
        reason = self.remote.unreachable()
        if reason or self.runtime is None:
            return reason
        if not (self.remote.fingerprint().get("runtimes") or {}).get(self.runtime):
            return (f"the device at {self.remote.url} has no {self.runtime} (or its agent is older than this hwnas): "
                    f"pip install {self.runtime.replace('_', '-')} ./agent there")
        return None

    def device_runtime(self) -> dict[str, Any]:
        """The device's ``runtimes`` entries (the agent's fingerprint), lifted to the top of this fingerprint."""
        return dict(self.remote.fingerprint().get("runtimes") or {}) if self.remote is not None else {}

    def transport(self) -> dict[str, Any]:
        return {"transport": f"hwnas-agent at {self.remote.url}"} if self.remote is not None else {}

    def fingerprint(self) -> dict[str, Any]:
        if self.remote is None:
            return super().fingerprint()
        return {**self.remote.fingerprint(), **host_tools(), "profiler": self.name, **self._device(),
                **self.settings()}

    def prepare(self) -> None:
        if self.remote is not None:  # nothing to pin here: the device's worker is pinned by the agent
            self._prepared = True
            return
        super().prepare()

    def time_on_device(self, data: bytes, fmt: str) -> Measurement:
        return self.remote.time(data, remote_settings(self, fmt))


def host_tools() -> dict[str, Any]:
    """The host-side versions that shape what the device runs (the exporter), for the fingerprint."""
    out = {}
    for mod in ("torch", "onnx"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            out[mod] = None
    return out
