"""Two or more LUTs side by side (``hwnas predict --lut fp32.json --lut int8.json``): what int8 buys here.

Every number is a prediction of its own LUT, labelled with that LUT's precision; nothing here is measured, and
a ratio is only printed between LUTs of one device (the same device fields of the fingerprint), since fp32 on a
laptop against int8 on a phone says nothing about int8. Per network: the calibrated predictions; per block:
the LUT medians, so one sees which blocks int8 speeds up and which it slows (small channel counts on x86 pay
more for the quantize/dequantize pairs than they save in the convolution).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from hwnas.core.errors import InputError
from hwnas.latency.lut import LUT, fingerprint_diff
from hwnas.latency.predict import latency_predictor

# what may differ between the LUTs compared: the precision, and the settings that follow from it
SAME_DEVICE = ("cpu_model", "cpu_flags", "cpu_count", "machine", "threads", "onnxruntime", "gpu")


@dataclass(frozen=True)
class BlockRow:
    key: str
    ms: tuple[float, ...]             # each LUT's median, in the order the LUTs were given

    @property
    def ratio(self) -> float:          # the last LUT over the first: < 1 is faster
        return self.ms[-1] / self.ms[0]


@dataclass(frozen=True)
class NetworkRow:
    arch_id: str
    resolution: int
    summary: str
    predicted_ms: tuple[float, ...]   # calibrated, one per LUT
    blocks: tuple[BlockRow, ...] = field(default=())

    @property
    def ratio(self) -> float:
        return self.predicted_ms[-1] / self.predicted_ms[0]


@dataclass(frozen=True)
class Comparison:
    luts: tuple[dict[str, Any], ...]  # path, profiler, precision, quantization, label
    same_device: bool
    device_diff: dict[str, Any]
    networks: tuple[NetworkRow, ...]

    def to_dict(self) -> dict[str, Any]:
        nets = [{**asdict(n), "ratio_last_over_first": round(n.ratio, 4),
                 "blocks": [{**asdict(b), "ratio_last_over_first": round(b.ratio, 4)} for b in n.blocks]}
                for n in self.networks]
        return {"format": "hwnas-lut-comparison", "luts": list(self.luts), "same_device": self.same_device,
                "device_diff": self.device_diff, "predicted": "every latency is a LUT prediction, not a measurement",
                "networks": nets}


def compare_luts(luts: Sequence[LUT], archs: Sequence[Any], blocks: bool = True) -> Comparison:
    """Predict ``archs`` with every LUT (they must price the same blocks: one space)."""
    if len(luts) < 2:
        raise InputError("a comparison needs two LUTs or more (--lut A --lut B)")
    first = luts[0]
    for other in luts[1:]:
        if other.space != first.space:
            raise InputError(f"{other.path} was built for space {other.space.get('name')!r} and {first.path} for "
                             f"{first.space.get('name')!r}: a comparison needs LUTs of one space")
    for other in luts[1:]:  # ms per batch of 1 and per batch of 32 are not one unit: no ratio between them
        if other.batch_size != first.batch_size:
            raise InputError(f"the LUT {first.path} is at batch {first.batch_size} but the LUT {other.path} is at "
                             f"batch {other.batch_size}: a batch-{first.batch_size} number is not compared with a "
                             f"batch-{other.batch_size} one; compare LUTs built at one batch size "
                             f"(hwnas profile --batch-size N)")
    diff: dict[str, Any] = {}
    for other in luts[1:]:
        diff.update({k: list(v) for k, v in fingerprint_diff(first.fingerprint, other.fingerprint, SAME_DEVICE).items()})
    preds = [latency_predictor(lut, lut.search_space()) for lut in luts]
    per_lut = [p.predict_many(list(archs)) for p in preds]
    rows = []
    for i, a in enumerate(archs):
        block_rows: tuple[BlockRow, ...] = ()
        if blocks:
            parts = [dict(p.breakdown(a)) for p in preds]
            block_rows = tuple(BlockRow(k, tuple(float(part[k]) for part in parts)) for k in parts[0])
        rows.append(NetworkRow(a.id, a.resolution, a.summary, tuple(float(ms[i]) for ms in per_lut), block_rows))
    info = tuple({"path": str(lut.path), "profiler": lut.profiler, "precision": lut.precision,
                  "quantization": lut.settings.get("quantization"), "label": lut.label,
                  "calibration": (lut.calibration or {}).get("model")} for lut in luts)
    return Comparison(info, not diff, diff, tuple(rows))


def render(c: Comparison, blocks: bool = False) -> str:
    """The comparison as text: one line per network, and with ``blocks`` one per block."""
    names = [i["precision"] for i in c.luts]
    if len(set(names)) < len(names):  # two LUTs of one precision (two devices, two profilers): say which
        names = [f"{i['precision']} ({i['profiler']})" for i in c.luts]
    lines = ["predicted latency (LUT predictions, not measurements): " + " vs ".join(
        f"{n} [{i['path']}]" for n, i in zip(names, c.luts))]
    if not c.same_device:
        lines.append("WARNING: the LUTs describe different devices or settings ("
                     + ", ".join(f"{k}: {v[0]!r} vs {v[1]!r}" for k, v in c.device_diff.items())
                     + "); the ratio below mixes the device with the precision")
    for n in c.networks:
        ms = "  ".join(f"{name} {v:8.3f} ms" for name, v in zip(names, n.predicted_ms))
        lines.append(f"  {n.arch_id}  res {n.resolution:3d}  {n.summary}  {ms}  {names[-1]}/{names[0]} "
                     f"{n.ratio:.2f}x")
        if blocks:
            for b in n.blocks:
                cells = "  ".join(f"{v:8.4f}" for v in b.ms)
                verdict = "faster" if b.ratio < 0.95 else "slower" if b.ratio > 1.05 else "same"
                lines.append(f"      {cells} ms  {b.ratio:5.2f}x {verdict:6s} {b.key}")
    return "\n".join(lines)
