"""One evaluated architecture of a search: :class:`SearchRecord`.

Inside hwnas a record is this dataclass; in files (front.json, best.json, front.csv, the store's rows) it
is the plain dict of :meth:`SearchRecord.to_dict`, read back with :meth:`SearchRecord.from_dict`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from hwnas.core.errors import InputError

if TYPE_CHECKING:
    from hwnas.spaces.base import SpaceArch


class RecordError(InputError):
    """A search record read from a file lacks fields (edited, or not an hwnas record)."""


@dataclass(frozen=True)
class SearchRecord:
    """An arch with its predicted latency, its costs and the evaluator's accuracy (NaN: the evaluation failed).

    The field order is the key order of the dict a record is written as (front.json, best.json).
    """

    arch_id: str
    arch: dict[str, Any]  # the arch's ``to_dict()``
    latency_ms: float     # predicted from the LUT
    params_m: float
    macs_m: float
    memory_mb: float      # fp32 peak live activations
    layers: int
    accuracy: float       # the search evaluator's score

    @classmethod
    def of(cls, arch: SpaceArch, latency_ms: float, accuracy: float) -> SearchRecord:
        """The record of ``arch``: its costs counted from its layers."""
        from hwnas.spaces.base import layer_costs

        layers = arch.layers()
        macs, params = layer_costs(layers)
        return cls(arch_id=arch.id, arch=arch.to_dict(), latency_ms=float(latency_ms),
                   params_m=params / 1e6, macs_m=macs / 1e6,
                   # a cell network with no path is a constant: no layers, nothing live
                   memory_mb=max((d.activation_elems for d in layers), default=0) * 4 / 2**20,
                   layers=len(layers), accuracy=float(accuracy))

    @property
    def failed(self) -> bool:
        """The evaluator raised for this arch (its accuracy is NaN)."""
        return self.accuracy != self.accuracy

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "a search record") -> SearchRecord:
        """The record a :meth:`to_dict` wrote; keys it does not know are ignored, missing ones refused."""
        if not isinstance(d, dict):
            raise RecordError(f"{source} is a {type(d).__name__}, not a JSON object of a search record")
        missing = [f.name for f in fields(cls) if f.name not in d]
        if missing:
            raise RecordError(f"{source} lacks the field(s) {missing} of a search record; the file was edited "
                              f"or is not from hwnas search")
        bad = [f.name for f in fields(cls) if not isinstance(d[f.name], _TYPES[f.name])
               or isinstance(d[f.name], bool)]
        if bad:
            raise RecordError(f"{source}: field(s) {bad} have the wrong type "
                              f"({', '.join(f'{k}={d[k]!r}' for k in bad)}); the file was edited or is damaged")
        return cls(**{f.name: d[f.name] for f in fields(cls)})


_NUMBER = (int, float)
_TYPES = {"arch_id": str, "arch": dict, "latency_ms": _NUMBER, "params_m": _NUMBER, "macs_m": _NUMBER,
          "memory_mb": _NUMBER, "layers": int, "accuracy": _NUMBER}
