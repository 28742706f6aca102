"""What every kind of search space shares: the ``Space``/``SpaceArch`` protocols, the registry of kinds
(``SPACES``), each kind's optional parts (``KindParts``), reading space files of any kind, and the field readers
the kinds' ``from_dict`` use. The kinds themselves live beside this module: ``mbv3.py`` (MobileNetV3 /
Once-for-All style) and ``cells.py`` (NAS-Bench-201-style cells).
"""
from __future__ import annotations

import hashlib

import importlib
import math
import random
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Protocol, Sequence, runtime_checkable

import numpy as np

from hwnas.core import jsonio
from hwnas.core.errors import InputError
from hwnas.core.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from hwnas.spaces.blocks import LayerDesc

SPACES_DIR = Path(__file__).parent  # the shipped space files lie beside the code that reads them



class SpaceError(InputError):
    """A search-space definition is malformed; the message names the field."""


class ArchError(InputError):
    """An architecture does not fit its space; the message names the field and the allowed values."""


# A space file's "kind" -> its space class (``from_dict(data, source)``, the Space protocol); outside packages
# add kinds under the hwnas.spaces entry-point group. Both shipped kinds are named here and loaded when read.
SPACES = Registry("space", "hwnas.spaces", SpaceError, label="space kind")
SPACES.register("mbv3", "hwnas.spaces.mbv3:MBv3Space")
SPACES.register("cell", "hwnas.spaces.cells:CellSpace")
SPACES.register("network", "hwnas.spaces.network:NetworkSpace")
SPACES.register("darts", "hwnas.spaces.darts:DartsSpace")
SPACES.register("mixed", "hwnas.spaces.mixed:MixedSpace")


@dataclass(frozen=True)
class KindParts:
    """What a space kind brings besides its space and arch classes: one record on the space class (``parts``),
    so no module outside the kind tests for its name or type. The parts live in the layers above spaces, so
    they are named as ``"module:attr"`` and loaded the first time they are asked for (:func:`kind_part`).

    ``latency_predictor``: a dense fast path, ``cls(lut, space, calibrated)`` (None: the generic sum over
    ``layers()``, :class:`hwnas.latency.predict.LayerSumPredictor`); ``supernet``: the weight-sharing supernet,
    ``cls(space, width)``, an ``nn.Module`` with ``largest()``, ``smallest()``, ``students(rng, n, sampling)``,
    ``check(arch)``, ``forward(x, arch)`` and ``extract(arch)`` (optional: ``width``, ``fair_sampling = True``,
    ``relaxed_forward``/``searchable_genes`` for the differentiable strategy, and ``relaxed_choices``/``derive``/
    ``log_prob`` where its relaxed choices are not the genes, as DARTS's edges) (None: the kind has none, the
    ``supernet`` evaluator refuses it);
    ``supernet_sampling``: its default path sampling; ``gene_ops``: the space varies whole gene matrices at once
    (``gene_matrix``, ``crossover_genes``, ``mutate_genes``, ``canonical_genes``, ``archs_from_genes``,
    ``gene_ids``: the evolutionary strategies' vectorised path); ``progressive_caps``: ``fn(space, phase,
    phases) -> [highest gene index]`` for the ``progressive`` strategy's schedule (None: it caps MACs instead)."""

    latency_predictor: str | None = None
    supernet: str | None = None
    supernet_sampling: str = "uniform"
    gene_ops: bool = False
    progressive_caps: str | None = None


def layer_costs(layers: Sequence[Any]) -> tuple[int, int]:
    """(multiply-accumulates, parameters) of a network's layers: the one count every report, record, baseline
    and strategy uses, whatever the kind (``arch.layers()``)."""
    return sum(d.macs for d in layers), sum(d.params for d in layers)


def macs_m(arch: Any) -> float:
    """An arch's multiply-accumulates in millions (see :func:`layer_costs`)."""
    return layer_costs(arch.layers())[0] / 1e6


def kind_part(space: Any, name: str) -> Any:
    """The loaded part ``name`` of ``space``'s kind (see :class:`KindParts`), or None where the kind has none."""
    ref = getattr(getattr(space, "parts", None) or KindParts(), name)
    if not isinstance(ref, str) or ":" not in ref:
        return ref
    module, attr = ref.split(":", 1)
    return getattr(importlib.import_module(module), attr)


def canonical_arch(arch: Any) -> Any:
    """The representative of ``arch``'s equivalence class where its kind defines one (``CellArch.canonical``:
    dead edges set to ``none``); every MobileNetV3 arch is its own (its genes are canonical already)."""
    canonical = getattr(arch, "canonical", None)
    return canonical() if canonical is not None else arch


# -- registry of shipped spaces ------------------------------------------------
def list_spaces() -> list[str]:
    return sorted(p.stem for p in SPACES_DIR.glob("*.json"))


@runtime_checkable
class SpaceArch(Protocol):
    """One network of a space, of any kind: what search, the predictor, evaluators, finalize and reports use.

    Frozen dataclasses with a ``resolution`` field (``dataclasses.replace(arch, resolution=r)`` moves one
    to another input size)."""

    space: Any
    resolution: int

    @property
    def id(self) -> str: ...
    @property
    def summary(self) -> str: ...
    def describe(self) -> str: ...                          # the report's line for it
    def report_fields(self) -> dict[str, Any]: ...          # kind-specific fields of `hwnas predict --json`
    def validate(self, source: str = "arch") -> None: ...
    def layers(self) -> list[LayerDesc]: ...               # the LUT keys: what latency is predicted from
    def mutate(self, rng: Any = None, prob: float = 0.1) -> "SpaceArch": ...
    def crossover(self, other: Any, rng: Any = None) -> "SpaceArch": ...
    def genes(self) -> list[int]: ...
    def encode(self) -> list[float]: ...
    def to_dict(self) -> dict[str, Any]: ...


@runtime_checkable
class Space(Protocol):
    """A search space of any kind (``mbv3``: :class:`hwnas.spaces.mbv3.MBv3Space`; ``cell``: :class:`hwnas.spaces.cells.CellSpace`).

    A new kind implements this and a ``from_dict``/``validate`` pair, and registers its class in :data:`SPACES`;
    the predictor then prices it generically from ``layers()`` (:class:`hwnas.latency.predict.LayerSumPredictor`).
    Its optional parts (a fast predictor, a supernet) are the class's ``parts`` (:class:`KindParts`)."""

    name: str
    kind: str
    resolutions: tuple[int, ...]
    in_channels: int
    num_classes: int

    @property
    def digest(self) -> str: ...
    @property
    def encoding_size(self) -> int: ...
    def to_dict(self) -> dict[str, Any]: ...
    def sample(self, rng: Any = None) -> Any: ...
    def sample_distinct(self, n: int, rng: Any = None, exclude: Iterable[str] = ()) -> list[Any]: ...
    def smallest(self) -> Any: ...
    def largest(self) -> Any: ...
    def layers(self, arch: Any) -> list[LayerDesc]: ...
    def all_layers(self, resolutions: Iterable[int] | None = None) -> list[LayerDesc]: ...
    def arch_from_dict(self, data: Any, source: str = "arch") -> Any: ...
    def load_arch(self, path: str | Path) -> Any: ...
    def gene_upper_bounds(self) -> list[int]: ...
    def from_genes(self, genes: Iterable[int]) -> Any: ...
    def encode_many(self, archs: Sequence[Any]) -> np.ndarray: ...
    def with_resolutions(self, resolutions: Iterable[int], num_classes: int | None = None) -> Any: ...


def checked_resolutions(space: Any, resolutions: Iterable[int] | None) -> tuple[int, ...]:
    """``resolutions`` (default: all of the space's), each one the space allows, or a SpaceError naming them."""
    resolutions = tuple(resolutions) if resolutions is not None else tuple(space.resolutions)
    bad = [r for r in resolutions if r not in space.resolutions]
    if bad:
        raise SpaceError(f"resolutions {bad} are not in space {space.name!r}; choose from {list(space.resolutions)}")
    return resolutions


def space_from_dict(data: Any, source: str = "space") -> Any:
    """A space of the kind its ``"kind"`` field names: ``mbv3`` (the default), ``cell``, or a kind an
    installed package registers in the ``hwnas.spaces`` entry-point group."""
    kind = data.get("kind", "mbv3") if isinstance(data, dict) else "mbv3"
    try:
        cls = SPACES.get(kind)
    except SpaceError as e:
        raise SpaceError(f"{source}: {e}") from e.__cause__  # a plugin that failed to load keeps its cause
    return cls.from_dict(data, source)


def get_space(name_or_path: str | Path) -> Any:
    """A shipped space by name (``mbv3``, ``demo``, ``cell-demo``) or a custom space file (JSON/TOML/YAML)."""
    p = Path(name_or_path)
    if not (p.suffix.lower() in (".json", ".toml", ".yaml", ".yml") or p.is_file()):
        p = SPACES_DIR / f"{name_or_path}.json"
        if not p.is_file():
            raise SpaceError(f"unknown space {str(name_or_path)!r}; shipped spaces: {list_spaces()} "
                             f"(or pass a space file)")
    return load_space_file(p)


_LOADING: list[Path] = []  # the space files being read, outermost first: a space naming another (mixed's 'cell')
DATA_CLASSES = "data"  # "num_classes": "data" in a space file: as many classes as the data given with --data

# each space read from a file: its digest -> (the file, the --data its class count came from), so a message
# (hwnas.latency.predict.fill_command) can name the exact command that reads the same space again
_FILES: dict[str, tuple[str, str | None]] = {}


def classes_from_data(path: str | Path) -> bool:
    """Whether the space file says ``"num_classes": "data"`` (its class count is the data set's)."""
    fields = read_space_file(path)
    return isinstance(fields, dict) and fields.get("num_classes") == DATA_CLASSES


def load_space_file(path: str | Path, num_classes: int | None = None, data: str | None = None) -> Any:
    """A custom space file (``--space-file``), always as a file: a directory or /dev/zero given there was looked up
    as a shipped space's name ("unknown space"). A file saying ``"num_classes": "data"`` takes ``num_classes``
    (the class count of ``data``, resolved where the data are loaded: hwnas.evaluate.data.load_space_for_data);
    without it that is a SpaceError naming --data. A space that names itself, directly or through others (a
    mixed space's ``cell``), is a one-line SpaceError, not endless recursion."""
    try:
        key = Path(path).resolve()
    except (OSError, RuntimeError):  # a link loop: read_space_file says so
        key = Path(path)
    if key in _LOADING:
        chain = " -> ".join(str(p) for p in _LOADING[_LOADING.index(key):] + [key])
        raise SpaceError(f"the space names itself ({chain}); a mixed space's 'cell' must name a "
                         f"cell space (a shipped name such as cell-demo, or another cell space file)")
    fields = read_space_file(path)
    if isinstance(fields, dict) and fields.get("num_classes") == DATA_CLASSES:
        if num_classes is None:
            raise SpaceError(f"{path}: \"num_classes\": \"data\" takes the class count of the data set, and none "
                             f"was given: add --data DATA (the images the model is for), or write the count in the "
                             f"file (\"num_classes\": N)")
        fields = {**fields, "num_classes": int(num_classes)}
    else:
        data = None  # the file's own count: the data play no part in what the space is
    _LOADING.append(key)
    try:
        space = space_from_dict(fields, source=str(path))
    finally:
        _LOADING.pop()
    _FILES[space.digest] = (str(path), data)
    return space


def space_file_of(space: Any) -> tuple[str, str | None] | None:
    """(the file, the --data it needs) this very space was read from in this process, else None."""
    return _FILES.get(space.digest)


def read_space_file(path: str | Path) -> dict:
    """The fields of a space file; a directory, /dev/zero, a FIFO or a missing file is a one-line SpaceError."""
    p = Path(path)
    problem = jsonio.path_problem(p, "a space file", "JSON, TOML or YAML")
    if problem:
        raise SpaceError(problem)
    if not p.is_file():
        raise SpaceError(f"space file {str(p)!r} does not exist; give a space file (JSON, TOML or YAML), or --space "
                         f"NAME for a shipped one ({', '.join(list_spaces())})")
    return read_structured(p)


def distinct_samples(sample: Any, n: int, rng: random.Random, exclude: Iterable[str] = ()) -> list[Any]:
    """Up to ``n`` distinct archs drawn by ``sample(rng)`` whose ids are not in ``exclude`` (50 draws per
    wanted arch at most): any kind of space samples distinct archs with this."""
    seen, out = set(exclude), []
    for _ in range(50 * n):
        if len(out) == n:
            break
        a = sample(rng)
        if a.id not in seen:
            seen.add(a.id)
            out.append(a)
    return out


def at_resolutions(space: Any, resolutions: Iterable[int], num_classes: int | None = None) -> Any:
    """``space`` (of any kind) at other input resolutions, renamed ``<name>-r<res>[-<res>...]``."""
    res = sorted({int(r) for r in resolutions})
    if not res:
        raise SpaceError("with_resolutions: give at least one resolution")
    d = {**space.to_dict(), "name": f"{space.name}-r{'-'.join(map(str, res))}", "resolutions": res}
    if num_classes is not None:
        d["num_classes"] = int(num_classes)
    return space_from_dict(d, source=f"{space.name} at resolutions {res}")


def read_fields(cls: type, data: Any, source: str, required: tuple[str, ...], convert: Any) -> Any:
    """A space dataclass from a file's object: only ``cls``'s fields, the ``required`` ones present, each
    given field read by ``convert(name, value, where)``; then validated. Every kind of space loads so."""
    if not isinstance(data, dict):
        raise SpaceError(f"{source}: expected a JSON object at the top level, got {type(data).__name__}")
    check_fields(data, {f.name for f in fields(cls)}, required, source, SpaceError)
    space = cls(**{f.name: convert(f.name, data[f.name], f"{source}: field {f.name!r}")
                   for f in fields(cls) if f.name in data})
    space.validate(source)
    return space


def read_string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise SpaceError(f"{where} must be a string, got {value!r}")
    return value


def as_rng(rng: random.Random | int | None) -> random.Random:
    return rng if isinstance(rng, random.Random) else random.Random(rng)


def _prod(values: Iterable[int]) -> int:
    out = 1
    for v in values:
        out *= v
    return out


def as_num(v: Any) -> float | int:
    f = float(v)
    return int(f) if f.is_integer() else f


def read_list(value: Any, where: str) -> list:
    if not isinstance(value, (list, tuple)):
        raise SpaceError(f"{where} must be a list, got {value!r}")
    return list(value)


def arch_id(arch: Any) -> str:
    """The 12-hex id of an arch of any kind: its space's digest and its canonical JSON, hashed (what runs,
    caches and reports key an arch by)."""
    return hashlib.sha256(f"{arch.space.digest}:{arch.to_json()}".encode()).hexdigest()[:12]


def read_ints(value: Any, where: str) -> tuple[int, ...]:
    """A space file's non-empty list of whole numbers (widths, depths, resolutions ...), as a tuple."""
    if not isinstance(value, list) or not value:
        raise SpaceError(f"{where} must be a non-empty list of whole numbers, got {value!r:.60}")
    return tuple(read_number(v, int, f"{where}[{i}]") for i, v in enumerate(value))


def plain_fields(obj: Any) -> dict[str, Any]:
    """A space dataclass as its file writes it: every field, tuples (nested too) as lists."""
    def plain(v: Any) -> Any:
        return [plain(x) for x in v] if isinstance(v, tuple) else v

    return {f.name: plain(getattr(obj, f.name)) for f in fields(obj)}


def read_number(value: Any, kind: type, where: str, error: type[Exception] = SpaceError) -> Any:
    """A finite JSON number (a bool is not one); for ``int``, a whole one (3.0 is 3, 3.5 is refused)."""
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or (kind is int and not float(value).is_integer())):
        raise error(f"{where} must be {'a whole number' if kind is int else 'a finite number'}, got {value!r:.40}")
    return int(value) if kind is int else as_num(value)



def check_arch_space(data: dict, space: Any, foreign_fields: set[str], source: str) -> None:
    """An arch of another space (named by its "space" field, or recognised by fields only another kind has)
    is refused as that, naming both spaces and their kinds, before its fields are checked one by one."""
    named = data.get("space", space.name)
    other = sorted(foreign_fields & set(data))
    if named == space.name and not other:
        return
    if named != space.name:
        kind = _shipped_kind(named)
        what = f"space {named!r}" + (f" (kind {kind})" if kind else "")
    else:
        what = f"another kind of space (it has {other})"
    raise ArchError(f"{source}: arch is for {what}, not {space.name!r} (kind {space.kind}); give it with "
                    f"the matching space (--space / --space-file, or a LUT built for it)")


def _shipped_kind(name: Any) -> str | None:
    """The kind of the shipped space ``name``, if it is one."""
    try:
        if isinstance(name, str) and name in list_spaces():
            return get_space(name).kind
    except (SpaceError, OSError):
        pass
    return None


def check_fields(data: dict, allowed: set[str], required: tuple[str, ...], where: str, error: type) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise error(f"{where}: unknown field(s) {unknown}; allowed: {sorted(allowed)}")
    for req in required:
        if req not in data:
            raise error(f"{where}: missing required field {req!r}")



def read_structured(path: Path) -> Any:
    """A space file's content: JSON strictly (jsonio), TOML, or YAML with the extra installed."""
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        return jsonio.loads_file(path, SpaceError, "space file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpaceError(f"{path}: not UTF-8 text (byte {e.start}); expected a space file") from None
    try:
        if suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib  # type: ignore[no-redef]
            return tomllib.loads(text)
        try:
            import yaml
        except ModuleNotFoundError:
            raise SpaceError(f"{path}: YAML space files need PyYAML: pip install 'hwnas[yaml]' "
                             f"(or write the space as JSON/TOML)") from None
        return yaml.load(text, Loader=_unique_key_loader(yaml, path))
    except SpaceError:
        raise
    except RecursionError:
        raise SpaceError(f"{path}: nested too deeply to be a space file") from None
    except Exception as e:  # tomllib.TOMLDecodeError, yaml.YAMLError
        raise SpaceError(f"{path}: could not parse ({type(e).__name__}: {_first_line(e)})") from None


def _unique_key_loader(yaml: Any, path: Path) -> Any:
    """PyYAML's safe loader, refusing a key given twice in one mapping (safe_load keeps the last, silently)."""

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise SpaceError(f"{path}: line {key_node.start_mark.line + 1}: {jsonio.DuplicateKeyError(key)}")
                seen.add(key)
            return super().construct_mapping(node, deep)

    return UniqueKeyLoader


def _first_line(e: Exception) -> str:
    return (str(e).splitlines() or [""])[0][:200]

