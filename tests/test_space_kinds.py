"""A third kind of space, registered from this file, runs sample -> predict -> search -> finalize.

The point is what it does *not* touch: no module outside the kind tests for a kind's name or type, so a kind is
its space class (the ``Space`` protocol), its arch class and one registration. This one, ``chain``, is a plain
stack of convolutions with one kernel gene per layer; it brings no fast predictor and no supernet
(``KindParts()``), so the generic layer sum prices it and finalize trains the pick from scratch."""
from __future__ import annotations

import hashlib
import itertools
import json
import random
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import pytest

from hwnas.spaces.blocks import LayerDesc
from hwnas.spaces.base import ArchError, KindParts, Space, SpaceArch, kind_part, space_from_dict

KERNELS = (1, 3)


@dataclass(frozen=True)
class ChainSpace:
    name: str
    layers_n: int = 3
    channels: int = 8
    resolutions: tuple[int, ...] = (16,)
    in_channels: int = 1
    num_classes: int = 10
    kind = "chain"
    parts = KindParts()  # nothing of its own: the generic layer sum, no supernet

    @classmethod
    def from_dict(cls, data: Any, source: str = "space") -> "ChainSpace":
        d = dict(data)
        d.pop("kind", None)
        d["resolutions"] = tuple(d.get("resolutions", (16,)))
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "layers_n": self.layers_n, "channels": self.channels,
                "resolutions": list(self.resolutions), "in_channels": self.in_channels,
                "num_classes": self.num_classes}

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    @property
    def encoding_size(self) -> int:
        return self.layers_n

    def with_resolutions(self, resolutions: Iterable[int], num_classes: int | None = None) -> "ChainSpace":
        return ChainSpace(self.name, self.layers_n, self.channels, tuple(resolutions), self.in_channels,
                          num_classes or self.num_classes)

    def layers(self, arch: "ChainArch") -> list[LayerDesc]:
        r, c = arch.resolution, self.channels
        stem = LayerDesc("conv", self.in_channels, c, r, kernel=3, stride=2)
        body = [LayerDesc("conv", c, c, stem.out_res, kernel=k) for k in arch.kernels]
        return [stem, *body, LayerDesc("head", c, self.num_classes, stem.out_res, mid=16)]

    def all_layers(self, resolutions: Iterable[int] | None = None) -> list[LayerDesc]:
        descs = {d.key: d for r in (resolutions or self.resolutions) for k in KERNELS
                 for d in self.layers(ChainArch(self, r, (k,) * self.layers_n))}
        return list(descs.values())

    def size(self) -> int:
        return len(self.resolutions) * len(KERNELS) ** self.layers_n

    def all_archs(self) -> Iterable["ChainArch"]:  # small enough to list: the budget check prices every arch
        return (ChainArch(self, r, ks) for r in self.resolutions for ks in itertools.product(KERNELS, repeat=self.layers_n))

    def sample(self, rng: Any = None) -> "ChainArch":
        rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        return ChainArch(self, rng.choice(self.resolutions), tuple(rng.choice(KERNELS) for _ in range(self.layers_n)))

    def sample_distinct(self, n: int, rng: Any = None, exclude: Iterable[str] = ()) -> list["ChainArch"]:
        rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        seen, out = set(exclude), []
        for _ in range(100 * n):
            a = self.sample(rng)
            if a.id not in seen:
                seen.add(a.id)
                out.append(a)
            if len(out) == n:
                break
        return out

    def smallest(self) -> "ChainArch":
        return ChainArch(self, min(self.resolutions), (min(KERNELS),) * self.layers_n)

    def largest(self) -> "ChainArch":
        return ChainArch(self, max(self.resolutions), (max(KERNELS),) * self.layers_n)

    def arch_from_dict(self, data: Any, source: str = "arch") -> "ChainArch":
        if not isinstance(data, dict) or data.get("space") != self.name or "kernels" not in data:
            raise ArchError(f"{source}: not an arch of chain space {self.name!r}")
        arch = ChainArch(self, int(data["resolution"]), tuple(int(k) for k in data["kernels"]))
        arch.validate(source)
        return arch

    def load_arch(self, path) -> "ChainArch":
        return self.arch_from_dict(json.loads(open(path).read()), str(path))

    def gene_upper_bounds(self) -> list[int]:
        return [len(self.resolutions) - 1] + [len(KERNELS) - 1] * self.layers_n

    def from_genes(self, genes: Iterable[int]) -> "ChainArch":
        g = list(genes)
        return ChainArch(self, self.resolutions[g[0]], tuple(KERNELS[i] for i in g[1:]))

    def encode_many(self, archs: Sequence["ChainArch"]) -> np.ndarray:
        return np.array([a.encode() for a in archs], dtype=np.float32)


@dataclass(frozen=True)
class ChainArch:
    space: ChainSpace
    resolution: int
    kernels: tuple[int, ...]

    @property
    def id(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:10]

    @property
    def summary(self) -> str:
        return "kernels " + "".join(map(str, self.kernels))

    def describe(self) -> str:
        return f"resolution {self.resolution}, chain kernels {list(self.kernels)}"

    def report_fields(self) -> dict[str, Any]:
        return {"kernels": list(self.kernels)}

    def validate(self, source: str = "arch") -> None:
        if self.resolution not in self.space.resolutions or len(self.kernels) != self.space.layers_n \
                or not set(self.kernels) <= set(KERNELS):
            raise ArchError(f"{source}: not an arch of chain space {self.space.name!r}")

    def layers(self) -> list[LayerDesc]:
        return self.space.layers(self)

    def genes(self) -> list[int]:
        return [self.space.resolutions.index(self.resolution)] + [KERNELS.index(k) for k in self.kernels]

    def encode(self) -> list[float]:
        return [float(k == 3) for k in self.kernels]

    def mutate(self, rng: Any = None, prob: float = 0.1) -> "ChainArch":
        rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        ks = [k if rng.random() >= max(prob, 1 / len(self.kernels)) else rng.choice(KERNELS) for k in self.kernels]
        return ChainArch(self.space, self.resolution, tuple(ks))

    def crossover(self, other: "ChainArch", rng: Any = None) -> "ChainArch":
        rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        return ChainArch(self.space, self.resolution, tuple(rng.choice(p) for p in zip(self.kernels, other.kernels)))

    def to_dict(self) -> dict[str, Any]:
        return {"space": self.space.name, "resolution": self.resolution, "kernels": list(self.kernels)}


@pytest.fixture
def chain(tmp_path, monkeypatch):
    """One registration: an entry point of the hwnas.spaces group naming the class above, as an installed
    package declares it (a dist-info on sys.path), so the fresh processes that measure see the kind too."""
    info = tmp_path / "chain_kind-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: chain-kind\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[hwnas.spaces]\nchain = {__name__}:ChainSpace\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return space_from_dict({"kind": "chain", "name": "chain-3"})


def test_a_registered_kind_is_read_from_its_space_file_and_meets_the_protocols(chain):
    assert isinstance(chain, ChainSpace) and isinstance(chain, Space) and isinstance(chain.sample(0), SpaceArch)
    assert kind_part(chain, "latency_predictor") is None and kind_part(chain, "supernet") is None
    assert kind_part(chain, "supernet_sampling") == "uniform"


@pytest.mark.slow
def test_sample_predict_search_finalize_on_a_kind_from_this_file(chain, tmp_path, quick_policy):
    from hwnas.evaluate.supernet import build_supernet
    from hwnas.evaluate.base import EvaluatorError
    from hwnas.finalize import finalize
    from hwnas.latency.lut import LUT
    from hwnas.latency.predict import LayerSumPredictor, latency_predictor
    from hwnas.measuring.profiling import build_lut
    from hwnas.search import Constraints, run_search

    lut_path = tmp_path / "chain.json"
    build_lut("ort-cpu", chain, lut_path, profiler_options={"policy": quick_policy}, calib_archs=6, progress=False,
              processes=0, command="pytest: a third kind")
    lut = LUT.load(lut_path)
    assert lut.search_space() == chain and not lut.missing([d.key for d in chain.all_layers()])
    predictor = latency_predictor(lut)
    assert type(predictor) is LayerSumPredictor  # the kind brings no fast path: the generic sum prices it
    # the generic sum, checked exactly (which of two 12-µs chains is faster is timing noise, not a property)
    raw = LayerSumPredictor(lut, calibrated=False)
    for arch in (chain.smallest(), chain.largest()):
        assert raw.predict(arch) == pytest.approx(sum(lut.entries[d.key]["median_ms"] for d in arch.layers()))
    small, large = predictor.predict(chain.smallest()), predictor.predict(chain.largest())
    assert small > 0 and large > 0
    with pytest.raises(EvaluatorError, match="no weight-sharing supernet"):
        build_supernet(chain)

    r = run_search(lut_path, tmp_path / "run", evaluator="proxy:synflow", evaluator_options={"data": "digits"},
                   population=6, generations=2, seed=0, constraints=Constraints(budget_ms=max(small, large) * 2), progress=False)
    assert r.front and all(chain.arch_from_dict(rec.arch).validate() is None for rec in r.front)

    summary = finalize(tmp_path / "run", tmp_path / "dist", processes=0, data="digits", parity_images=16,
                       log=lambda *a, **k: None)
    report = (tmp_path / "dist" / "report.md").read_text()
    assert summary.report["latency"]["verdict"] in ("PASS", "FAIL", "UNCERTAIN") and summary.report["latency"]["measured"]["median_ms"] > 0
    assert "chain kernels [" in report  # the kind's own describe(), with no branch for it in report.py


def test_each_kind_has_its_own_names_and_the_generic_ones_are_gone():
    """The MobileNetV3 kind is one kind among others: its classes carry its name (``MBv3Space``, ``MBv3Arch``,
    ``MBv3LatencyPredictor``, ``MBv3Supernet``), and the names every kind shares are the protocols'."""
    import importlib
    import importlib.util

    import hwnas.spaces.base as base
    import hwnas.spaces.cells as cells
    import hwnas.spaces.mbv3 as mbv3
    from hwnas.evaluate import cell_supernet, mbv3_supernet, supernet
    from hwnas.latency import predict

    assert importlib.util.find_spec("hwnas.spaces.space") is None
    for module in (importlib.import_module("hwnas.spaces"), base, mbv3, cells):
        assert not {"Arch", "SearchSpace"} & set(vars(module)), module.__name__
    assert not hasattr(predict, "LatencyPredictor") and not hasattr(supernet, "Supernet")
    assert mbv3.MBv3Space.kind == "mbv3" and cells.CellSpace.kind == "cell"
    for space in (base.get_space("demo"), base.get_space("cell-demo")):
        assert isinstance(space, base.Space) and isinstance(space.sample(0), base.SpaceArch)
    assert kind_part(base.get_space("demo"), "supernet") is mbv3_supernet.MBv3Supernet
    assert kind_part(base.get_space("cell-demo"), "supernet") is cell_supernet.CellSupernet
    assert kind_part(base.get_space("demo"), "latency_predictor") is predict.MBv3LatencyPredictor
    assert kind_part(base.get_space("cell-demo"), "latency_predictor") is predict.CellLatencyPredictor
