"""Image data for the accuracy evaluators: the embedded default, users' own formats, seeded splits.

Everything downstream (supernet training, proxies, short training, finalize's
parity and int8 calibration) turns images into network inputs through
:func:`Splits.inputs`, so a model is always fed the same preprocessing.

Formats (``load_data(spec)``):

* ``digits`` — embedded: UCI handwritten digits (1,797 real 8x8 grey images, 10
  classes), shipped in the package so the demo needs no download and no extra
  dependency; upsampled to the space's resolution.
* ``fashion-small`` — embedded: a stratified, seeded Fashion-MNIST subset (600
  train + 200 official test 28x28 images per class, MIT; see hwnas/data/README.md).
* ``fashion-mnist`` — the full Fashion-MNIST as Debian's ``dataset-fashion-mnist``
  installs it (IDX files under /usr/share/datasets/fashion-mnist).
* ``idx:DIR`` — a directory with the four MNIST-style IDX files
  (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-…``; ``.gz`` or not):
  MNIST, Fashion-MNIST, KMNIST…; the t10k part is our test split.
* ``PATH.npz`` — arrays ``x`` (uint8, N x H x W x C) and ``y`` (N integer labels),
  optional ``classes`` (names) and ``x_test``/``y_test`` (an official test part,
  kept as the test split). Read without pickle.
* a CIFAR-10/100 "python version" directory (``data_batch_*``/``test_batch`` or
  ``train``/``test``): its own test part is our test split. Its pickles are read
  with an unpickler that admits only what CIFAR batches contain.
* an ImageFolder directory (``root/CLASS/*.png|jpg…``; needs Pillow), or one with its splits as folders, as
  torchvision's ImageFolder users lay them out: ``root/train/CLASS/…`` and ``root/test/CLASS/…``, optionally
  ``root/val/CLASS/…`` (without it, val is taken from train by the split seed); the class folders must agree.

``load_data(..., limit=N)`` keeps N images per class of the training part (all
but an official test part), stratified and seeded, before splitting: quick runs.
"""
from __future__ import annotations

import codecs
import gzip
import hashlib
import math
import pickle
import struct
import tokenize
import zipfile
import zlib
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from hwnas.core.errors import InputError

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
EMBEDDED = {"digits": DATA_DIR / "digits.npz", "fashion-small": DATA_DIR / "fashion-mnist-small.npz"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
# named IDX data sets: where Debian's package installs them, their class names, how to get them
IDX_SOURCES = {"fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"), FASHION_CLASSES,
                                 "apt-get install dataset-fashion-mnist (Debian/Ubuntu), or download the four "
                                 "IDX files from https://github.com/zalandoresearch/fashion-mnist and use "
                                 "--data idx:DIR")}
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
MAX_CLASSES = 100_000  # labels beyond this are not class indices (and would make a huge class list)
FORMATS = ("digits, fashion-small (embedded), fashion-mnist (Debian's dataset-fashion-mnist), idx:DIR, an .npz "
           "file, a CIFAR python directory or an image folder")


class DataError(InputError):
    """The data set cannot be used as given; the message says what is wrong and what to do."""


@dataclass(frozen=True, eq=False)
class ImageSet:
    x: np.ndarray  # uint8, N x H x W x C
    y: np.ndarray  # int64, N
    classes: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: np.ndarray) -> "ImageSet":
        return ImageSet(self.x[idx], self.y[idx], self.classes, self.source)


def validate(images: ImageSet, where: str) -> ImageSet:
    x, y = images.x, images.y
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise DataError(f"{where}: images must be N x H x W x C with C 1 or 3, got shape {x.shape}")
    if x.dtype != np.uint8:
        raise DataError(f"{where}: images must be uint8 (0..255), got {x.dtype}")
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{where}: need one label per image; {len(x)} images, labels of shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{where}: labels must be integers, got {y.dtype}")
    if len(x) == 0:
        raise DataError(f"{where}: no images")
    if x.shape[1] == 0 or x.shape[2] == 0:
        raise DataError(f"{where}: images are {x.shape[1]}x{x.shape[2]} pixels; they need at least 1x1")
    if y.min() < 0 or y.max() >= len(images.classes):
        raise DataError(f"{where}: labels must lie in 0..{len(images.classes) - 1} (one per class), "
                        f"found {int(y.min())}..{int(y.max())}")
    present = np.unique(y)
    if len(present) < 2:
        raise DataError(f"{where}: all images have label {int(present[0])}; a classifier needs at least 2 classes")
    return ImageSet(x, y.astype(np.int64), images.classes, images.source)


def _read_exact(f: IO[bytes], n: int, where: str, chunk: int = 1 << 24) -> bytearray:
    """n bytes into a writable buffer (np.frombuffer views it without a copy), or DataError when the file is short.

    Grows chunk by chunk: a corrupt header announcing terabytes costs no more memory than the file holds.
    """
    buf = bytearray()
    while len(buf) < n:
        part = f.read(min(chunk, n - len(buf)))
        if not part:
            raise DataError(f"{where}: truncated: expected {n} bytes of data, the file has {len(buf)}; "
                            f"download or write it again")
        buf += part
    return buf


def _default_classes(labels: list[np.ndarray], where: str) -> tuple[str, ...]:
    """Class names "0".."K-1" from the largest label (validate() reports labels that are not class indices)."""
    top = max((int(y.max()) for y in labels if y.size and np.issubdtype(y.dtype, np.integer)), default=-1)
    if top >= MAX_CLASSES:
        raise DataError(f"{where}: label {top} found; labels must be class indices 0..K-1 "
                        f"(hwnas takes at most {MAX_CLASSES} classes)")
    return tuple(str(i) for i in range(top + 1))


# -- .npz (read member by member, no pickle: sizes are checked before anything is allocated) ---------------
# what zipfile, zlib and numpy's header parser raise on a damaged file (the parser tokenizes the header text)
NPZ_ERRORS = (OSError, EOFError, ValueError, TypeError, zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error,
              NotImplementedError, RuntimeError, struct.error, SyntaxError, tokenize.TokenError, MemoryError)


def _npz_array(zf: zipfile.ZipFile, key: str, path: Path) -> np.ndarray | None:
    """One array of an .npz, or None when absent; its header must match the bytes the archive holds."""
    try:
        info = zf.getinfo(f"{key}.npy")
    except KeyError:
        return None
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise DataError(f"{path}: array {key!r} is in .npy format {version}; save it again with np.savez")
        if dtype.hasobject or dtype.itemsize == 0:
            raise DataError(f"{path}: array {key!r} has dtype {dtype}, which hwnas does not read (object arrays "
                            f"would need pickle); save plain numbers (x uint8, y integers)")
        nbytes = math.prod(shape) * dtype.itemsize
        held = info.file_size - f.tell()
        if min(shape, default=0) < 0 or nbytes != held:
            raise DataError(f"{path}: array {key!r} is truncated or corrupt: its header says shape {shape} "
                            f"{dtype} ({nbytes} bytes) but the archive holds {held} bytes; save it again")
        buf = _read_exact(f, nbytes, f"{path} ({key}.npy)")
    return np.frombuffer(buf, dtype).reshape(shape, order="F" if fortran else "C")


def _npz_images(x: np.ndarray, y: np.ndarray, classes: tuple[str, ...], source: str) -> ImageSet:
    return ImageSet(x[..., None] if x.ndim == 3 else x, y, classes, source)  # N x H x W: grey


def _from_npz(path: Path) -> tuple[ImageSet, ImageSet | None]:
    """An .npz's images and, when it has x_test/y_test, its own test part."""
    try:
        with zipfile.ZipFile(path) as zf:
            arrays = {k: _npz_array(zf, k, path) for k in ("x", "y", "classes", "x_test", "y_test")}
            members = ", ".join(repr(n.removesuffix(".npy")) for n in zf.namelist()) or "no arrays"
    except DataError:
        raise
    except NPZ_ERRORS as e:
        raise DataError(f"{path}: not a readable .npz file ({type(e).__name__}: {e}); write it with "
                        f"np.savez(path, x=images, y=labels)") from None
    missing = [k for k in ("x", "y") if arrays[k] is None]
    if missing:
        raise DataError(f"{path}: an .npz data set needs arrays 'x' (N x H x W x C uint8) and 'y' (N labels); "
                        f"missing {' and '.join(repr(k) for k in missing)} (it has {members})")
    if (arrays["x_test"] is None) != (arrays["y_test"] is None):
        raise DataError(f"{path}: an official test part needs both 'x_test' and 'y_test'; only one is there")
    classes = (_class_names(arrays["classes"], path) if arrays["classes"] is not None else
               _default_classes([a for a in (arrays["y"], arrays["y_test"]) if a is not None], str(path)))
    train = _npz_images(arrays["x"], arrays["y"], classes, str(path))
    if arrays["x_test"] is None:
        return train, None
    return train, _npz_images(arrays["x_test"], arrays["y_test"], classes, f"{path} (test part)")


def _class_names(names: np.ndarray, path: Path) -> tuple[str, ...]:
    """The optional 'classes' array as names; its code points are checked (numpy stores any 32-bit value)."""
    if names.ndim != 1 or names.dtype.kind not in "USiu":
        raise DataError(f"{path}: 'classes' must be a 1-D array of names, got {names.dtype} of shape {names.shape}")
    if names.dtype.kind == "U" and names.size:
        codes = np.ascontiguousarray(names).view(np.dtype("u4").newbyteorder(names.dtype.byteorder))
        if codes.max() > 0x10FFFF:
            raise DataError(f"{path}: 'classes' holds characters that are not Unicode; save the names again")
    if names.dtype.kind == "S":
        return tuple(c.decode("utf-8", errors="replace") for c in names)
    return tuple(str(c) for c in names)


# -- CIFAR python batches (pickles: only what a batch contains is admitted) ---------------------------------
def _numpy_core() -> tuple[Any, Any]:
    try:  # numpy >= 2 (1.26 has a forward-compatible stub)
        from numpy._core import multiarray, numeric
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray, numeric
    return multiarray, numeric


def _pickle_allowed() -> dict[tuple[str, str], Any]:
    """Every global a CIFAR batch pickle refers to, under numpy 1.x and 2.x names and pickle protocols 0-5."""
    multiarray, numeric = _numpy_core()
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
               ("_codecs", "encode"): codecs.encode}  # bytes in protocol <= 2 pickles written by Python 3
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = multiarray._reconstruct  # ndarray, protocols 0-4
        allowed[(f"{core}.numeric", "_frombuffer")] = numeric._frombuffer  # ndarray, protocol 5
    return allowed


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, bytes, str, numbers and numpy arrays; refuses every other global (code could run)."""

    def __init__(self, f: IO[bytes], path: Path):
        super().__init__(f, encoding="bytes")
        self.path, self.allowed = path, _pickle_allowed()

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.allowed:
            return self.allowed[(module, name)]
        raise DataError(f"{self.path} contains a pickled {module}.{name}, which a CIFAR batch never does; "
                        f"refusing to load it (pickles can run code)")


def _unpickle(path: Path) -> Any:
    try:
        with open(path, "rb") as f:
            return _CifarUnpickler(f, path).load()
    except DataError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            OverflowError, MemoryError, RecursionError) as e:
        raise DataError(f"{path}: not a CIFAR python batch ({type(e).__name__}: {e}); download the "
                        f"\"python version\" of CIFAR again") from None


def _is_cifar(path: Path) -> bool:
    return (path / "data_batch_1").is_file() or ((path / "train").is_file() and (path / "meta").is_file())


def _cifar_batch(f: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(N x 32 x 32 x 3 uint8 images, N labels) of one batch file."""
    d = _unpickle(f)
    if not isinstance(d, dict) or b"data" not in d or label_key not in d:
        keys = sorted(d) if isinstance(d, dict) else type(d).__name__
        raise DataError(f"{f}: not a CIFAR python batch: need a dict with b'data' and {label_key!r}, got {keys}")
    try:
        x = np.asarray(d[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        y = np.asarray(d[label_key], np.int64).reshape(-1)
    except (ValueError, TypeError, OverflowError) as e:
        raise DataError(f"{f}: not a CIFAR python batch ({type(e).__name__}: {e})") from None
    if len(x) != len(y):
        raise DataError(f"{f}: {len(x)} images but {len(y)} labels; download the batch again")
    return x, y


def _from_cifar(path: Path) -> tuple[ImageSet, ImageSet]:
    """CIFAR python batches; returns (train part, official test part)."""
    if (path / "data_batch_1").is_file():
        train_files, test_files = sorted(path.glob("data_batch_*")), [path / "test_batch"]
        label_key, meta, names_key = b"labels", path / "batches.meta", b"label_names"
    else:
        train_files, test_files = [path / "train"], [path / "test"]
        label_key, meta, names_key = b"fine_labels", path / "meta", b"fine_label_names"

    def read(files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
        for f in files:
            if not f.is_file():
                raise DataError(f"{path}: CIFAR directory is missing {f.name}")
        parts = [_cifar_batch(f, label_key) for f in files]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    xtr, ytr = read(train_files)
    xte, yte = read(test_files)
    classes = _default_classes([ytr, yte], str(path))
    if meta.is_file():
        d = _unpickle(meta)
        names = d.get(names_key) if isinstance(d, dict) else None
        if isinstance(names, list) and len(names) >= len(classes):
            classes = tuple(c.decode(errors="replace") if isinstance(c, bytes) else str(c) for c in names)
    return ImageSet(xtr, ytr, classes, str(path)), ImageSet(xte, yte, classes, f"{path} (test part)")


# -- IDX (MNIST-style) files ----------------------------------------------------------------------------------
def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """A uint8 IDX array with ``ndim`` dimensions (3: images N x H x W, 1: labels), gzipped or not."""
    what = "images (N x H x W)" if ndim == 3 else "labels"
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[:2] != b"\0\0":
                raise DataError(f"{path}: not an IDX file (it starts with {head.hex() or 'nothing'}, an IDX file "
                                f"with {what} starts with 0x{0x800 + ndim:08x}); check the file name and download")
            if head[2] != 0x08:
                raise DataError(f"{path}: IDX element type 0x{head[2]:02x} (magic 0x{head.hex()}); hwnas reads "
                                f"uint8 IDX (type 0x08, magic 0x{0x800 + ndim:08x} for {what})")
            if head[3] != ndim:
                raise DataError(f"{path}: IDX array with {head[3]} dimension(s) (magic 0x{head.hex()}); "
                                f"{what} need {ndim} (magic 0x{0x800 + ndim:08x})")
            dims = struct.unpack(f">{ndim}I", _read_exact(f, 4 * ndim, f"{path} (header)"))
            data = _read_exact(f, math.prod(dims), str(path))
            if f.read(1):
                raise DataError(f"{path}: more bytes than its header's dimensions {dims} declare; "
                                f"the file is corrupt, download it again")
    except DataError:
        raise
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot read this IDX file ({type(e).__name__}: {e}); download it again") from None
    return np.frombuffer(data, np.uint8).reshape(dims)


def _idx_file(directory: Path, name: str) -> Path:
    """``name`` in ``directory``, gzipped or not, also in the ``train-images.idx3-ubyte`` spelling."""
    for stem in (name, name.replace("-idx", ".idx")):
        for cand in (directory / stem, directory / f"{stem}.gz"):
            if cand.is_file():
                return cand
    raise DataError(f"{directory}: IDX file {name} (or {name}.gz) is missing; an IDX directory needs "
                    f"{', '.join(IDX_FILES)}")


def _idx_pair(directory: Path, images: str, labels: str, classes: tuple[str, ...] | None,
              source: str) -> ImageSet:
    xf, yf = _idx_file(directory, images), _idx_file(directory, labels)
    x, y = _read_idx(xf, 3), _read_idx(yf, 1)
    if len(x) != len(y):
        raise DataError(f"{xf} holds {len(x)} images but {yf} holds {len(y)} labels; "
                        f"the files do not belong together")
    return ImageSet(x[..., None], y, classes or (), source)


def read_idx_dir(directory: Path, classes: tuple[str, ...] | None = None) -> tuple[ImageSet, ImageSet]:
    """MNIST-style IDX directory; returns (train part, official t10k test part)."""
    if not directory.is_dir():
        raise DataError(f"{directory}: not a directory; idx:DIR needs a directory with {', '.join(IDX_FILES)}")
    train = _idx_pair(directory, IDX_FILES[0], IDX_FILES[1], classes, str(directory))
    test = _idx_pair(directory, IDX_FILES[2], IDX_FILES[3], classes, f"{directory} (test part)")
    if classes is None:
        names = _default_classes([train.y, test.y], str(directory))
        train, test = (ImageSet(s.x, s.y, names, s.source) for s in (train, test))
    return train, test


def _named_idx(name: str) -> tuple[ImageSet, ImageSet]:
    directory, classes, how = IDX_SOURCES[name]
    if not any((directory / f).is_file() or (directory / f"{f}.gz").is_file() for f in IDX_FILES):
        raise DataError(f"data set {name!r} is not installed (no IDX files in {directory}): {how}")
    return read_idx_dir(directory, classes)


def _from_folder(path: Path) -> ImageSet:
    try:
        from PIL import Image
    except ImportError:
        raise DataError("reading an image folder needs Pillow: pip install 'hwnas[images]' (or pillow)") from None
    class_dirs = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise DataError(f"{path}: an image folder needs one sub-directory per class (root/CLASS/image.png)")
    xs, ys, first = [], [], None
    for label, d in enumerate(class_dirs):
        for f in sorted(d.iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(f) as im:
                    if im.mode.startswith("I;16"):  # 16-bit grey: to 0..255 (/257); convert("L") clips at 255
                        arr = np.round(np.asarray(im, np.float64) / 257).astype(np.uint8)
                    else:
                        im = im.convert("L") if im.mode in ("L", "1") else im.convert("RGB")
                        arr = np.asarray(im, np.uint8)
            except OSError as e:
                from hwnas.evaluate.base import transient

                if transient(e):  # an I/O error of the machine, not a bad image
                    raise
                raise DataError(f"{f}: cannot read this image ({e})") from None
            arr = arr[..., None] if arr.ndim == 2 else arr
            if first is None:
                first = (f, arr.shape)
            elif arr.shape != first[1]:
                raise DataError(f"images of mixed sizes: {first[0]} is {first[1][1]}x{first[1][0]}x{first[1][2]}, "
                                f"{f} is {arr.shape[1]}x{arr.shape[0]}x{arr.shape[2]} (W x H x C); "
                                f"resize them to one size first")
            xs.append(arr)
            ys.append(label)
    if not xs:
        raise DataError(f"{path}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in its class directories")
    return ImageSet(np.stack(xs), np.asarray(ys, np.int64), tuple(d.name for d in class_dirs), str(path))


SPLIT_DIRS = ("train", "val", "test")  # torchvision ImageFolder users' layout: root/train/CLASS/*.png, root/test/...


def split_folders(path: Path) -> dict[str, Path] | None:
    """The split sub-folders of an image folder laid out as ``root/train/CLASS/…`` and ``root/test/CLASS/…``
    (``root/val/CLASS/…`` optional), or None for a plain ``root/CLASS/…`` folder."""
    found = {name: path / name for name in SPLIT_DIRS if (path / name).is_dir()}
    if "train" not in found or "test" not in found:
        return None
    others = sorted(d.name for d in path.iterdir() if d.is_dir() and not d.name.startswith(".") and d.name not in found)
    if others:
        raise DataError(f"{path}: has split folders ({', '.join(found)}) and other folders beside them "
                        f"({', '.join(others)}); put every class inside train/, test/ (and val/), or use a folder of "
                        f"class folders only")
    return found


def _from_split_folders(path: Path, found: dict[str, Path]) -> dict[str, ImageSet]:
    """Each split folder read as an image folder; their class folders must be the same (class i is one class)."""
    parts = {name: _from_folder(folder) for name, folder in found.items()}
    names = {name: set(p.classes) for name, p in parts.items()}
    for name, classes in names.items():
        if classes != names["train"]:
            lacks, extra = sorted(names["train"] - classes), sorted(classes - names["train"])
            said = "; ".join(x for x in (f"{name}/ lacks {', '.join(lacks)}" if lacks else "",
                                         f"{name}/ has {', '.join(extra)}, which train/ lacks" if extra else "") if x)
            raise DataError(f"{path}: the splits' classes differ ({said}); give train/, test/ and val/ the same "
                            f"class folders")
    return {name: ImageSet(p.x, p.y, p.classes, f"{path} ({name}/)") for name, p in parts.items()}


def _read(spec: str) -> tuple[ImageSet, ImageSet | None]:
    """The unvalidated images of ``spec`` and its official test part, if the format has one."""
    if spec in EMBEDDED:
        return _from_npz(EMBEDDED[spec])
    if spec in IDX_SOURCES:
        return _named_idx(spec)
    if spec.startswith("idx:"):
        return read_idx_dir(Path(spec[4:]).expanduser())
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(f"data set {spec!r} not found: give {FORMATS}")
    if path.is_file():
        if path.suffix != ".npz":
            raise DataError(f"{path}: a data file must be .npz with arrays x and y")
        return _from_npz(path)
    if _is_cifar(path):
        return _from_cifar(path)
    return _from_folder(path), None


def _checked_part(part: ImageSet, images: ImageSet, spec: str, name: str) -> ImageSet:
    part = validate(part, f"{spec} ({name} part)")
    if part.x.shape[1:] != images.x.shape[1:]:
        raise DataError(f"{spec}: {name} images are {part.x.shape[1:]} (H x W x C) but training images "
                        f"{images.x.shape[1:]}; both parts need one size")
    return part


def load_parts(spec: str) -> dict[str, ImageSet]:
    """Read a data set as its parts: ``train`` always, ``test`` when the format has an official test part, ``val``
    when it has an official validation part (an image folder with ``train/``, ``val/``, ``test/``)."""
    if split_folders_of(spec):
        path = Path(spec).expanduser()
        raw = _from_split_folders(path, split_folders(path) or {})
    else:
        images, test = _read(spec)
        raw = {"train": images, **({"test": test} if test is not None else {})}
    train = validate(raw["train"], spec)
    return {"train": train, **{name: _checked_part(p, train, spec, name) for name, p in raw.items() if name != "train"}}


def load_images(spec: str) -> tuple[ImageSet, ImageSet | None]:
    """Read a data set; the second item is its own test part when the format has one."""
    parts = load_parts(spec)
    return parts["train"], parts.get("test")


def _stratified(y: np.ndarray, fracs: tuple[float, ...], rng: np.random.Generator) -> list[np.ndarray]:
    parts: list[list[np.ndarray]] = [[] for _ in fracs]
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        bounds = np.cumsum([0] + [round(f * len(idx)) for f in fracs[:-1]])
        for i in range(len(fracs)):
            end = bounds[i + 1] if i + 1 < len(bounds) else len(idx)
            parts[i].append(idx[bounds[i]:end])
    return [np.sort(np.concatenate(p)) for p in parts]


@dataclass(eq=False)
class Splits:
    """Fixed, seeded train/val/test splits and the one preprocessing every consumer uses."""

    spec: str
    seed: int
    train: ImageSet
    val: ImageSet
    test: ImageSet
    mean: np.ndarray  # per image channel, 0..1 scale, from the train split
    std: np.ndarray
    limit: int | None = None  # images per class kept of the training part (None: all)
    # where each split came from, for data whose splits are folders (root/train, root/val, root/test); None: the
    # format's own rule (a test part kept whole, the rest split by the seed)
    parts: dict[str, str] | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.train.classes)

    @cached_property
    def digest(self) -> str:
        """Content hash of the three splits (computed once: config() is written every epoch)."""
        h = hashlib.sha256()
        for part in (self.train, self.val, self.test):
            h.update(part.x.tobytes())
            h.update(part.y.tobytes())
        return h.hexdigest()[:16]

    def config(self) -> dict:
        cfg = {"data": self.spec, "split_seed": self.seed, "sizes": [len(self.train), len(self.val), len(self.test)],
               "data_digest": self.digest}
        cfg = cfg if self.parts is None else {**cfg, "splits_from": dict(self.parts)}
        return cfg if self.limit is None else {**cfg, "data_limit": self.limit}

    def check_space(self, in_channels: int, num_classes: int) -> None:
        """The space's networks must output one logit per class of the data: more would train (and ship) a
        classifier of classes that do not exist, fewer could not be trained at all."""
        if self.num_classes != num_classes:
            raise DataError(f"data set {self.spec!r} has {self.num_classes} classes but the space's networks "
                            f"output {num_classes}; set \"num_classes\": {self.num_classes} in the space file "
                            f"(a copy of a shipped one: hwnas/spaces/NAME.json)")
        c = self.train.x.shape[-1]
        if c != in_channels and not (c == 1 and in_channels == 3):
            raise DataError(f"data set {self.spec!r} has {c}-channel images but the space takes {in_channels}")

    def inputs(self, x: np.ndarray | torch.Tensor, resolution: int, channels: int) -> torch.Tensor:
        """uint8 N x H x W x C -> normalised float N x channels x R x R (bilinear; antialiased when shrinking)."""
        t = torch.as_tensor(x).permute(0, 3, 1, 2).float().div_(255.0)
        t = (t - torch.as_tensor(self.mean, dtype=torch.float32).view(1, -1, 1, 1)) / \
            torch.as_tensor(self.std, dtype=torch.float32).view(1, -1, 1, 1)
        if t.shape[1] == 1 and channels == 3:
            t = t.expand(-1, 3, -1, -1)
        if t.shape[-1] != resolution or t.shape[-2] != resolution:
            t = F.interpolate(t, size=(resolution, resolution), mode="bilinear", align_corners=False,
                              antialias=resolution < t.shape[-1])
        return t.contiguous()

    def tensors(self, part: str, resolution: int, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A whole split as (inputs, labels), cached per resolution (evaluation reads it many times)."""
        key = (part, resolution, channels)
        if key not in self._cache:
            s: ImageSet = getattr(self, part)
            self._cache[key] = (self.inputs(s.x, resolution, channels), torch.as_tensor(s.y))
        return self._cache[key]

    def batches(self, part: str, batch_size: int, generator: torch.Generator | None = None,
                augment: bool = False, drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """uint8 image batches (shuffled when a generator is given); augment = random shifts of up to 1/8."""
        s: ImageSet = getattr(self, part)
        n = len(s)
        order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
        x_all, y_all = torch.as_tensor(s.x), torch.as_tensor(s.y)
        stop = n - n % batch_size if drop_last and n >= batch_size else n
        for i in range(0, stop, batch_size):
            idx = order[i:i + batch_size]
            x = x_all[idx]
            if augment:
                x = random_shift(x, generator)
            yield x, y_all[idx]


def random_shift(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Translate each uint8 NHWC image by up to H/8 pixels (zero fill): cheap, label-preserving for digits and CIFAR."""
    n, h, w, _ = x.shape
    pad = max(1, h // 8)
    padded = F.pad(x.permute(0, 3, 1, 2), (pad, pad, pad, pad)).permute(0, 2, 3, 1)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, :, None].expand(n, h, w)
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, :].expand(n, h, w)
    return padded[torch.arange(n)[:, None, None], rows, cols]


def limit_per_class(y: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of at most ``limit`` images of each class (seeded): quick runs on a big data set."""
    keep = [rng.permutation(np.flatnonzero(y == c))[:limit] for c in np.unique(y)]
    return np.sort(np.concatenate(keep))


def channel_stats(x: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std (0..1 scale) in chunks: a float64 copy of 60,000 images would take 400 MB."""
    n, c = len(x), x.shape[-1]
    total = np.zeros(c)
    for i in range(0, n, chunk):
        total += x[i:i + chunk].sum(axis=(0, 1, 2), dtype=np.float64)
    count = n * x.shape[1] * x.shape[2]
    mean = total / count / 255.0
    sq = np.zeros(c)
    for i in range(0, n, chunk):
        sq += np.square(x[i:i + chunk] / 255.0 - mean).sum(axis=(0, 1, 2))
    return mean.astype(np.float32), np.maximum(np.sqrt(sq / count), 1e-3).astype(np.float32)


def require_data(data: str | None, who: str) -> str:
    """``data`` if given; otherwise a one-line error. hwnas never picks a data set for the user: a silent
    default trained networks on handwritten digits when the user meant their own images."""
    if data is None or not str(data).strip():
        raise DataError(f"{who} reads images but no data set was given: add --data DATA (fashion-small, "
                        f"digits, fashion-mnist, idx:DIR, an .npz, a CIFAR directory or an image folder), or use a "
                        f"data-free evaluator (proxy:meco, proxy:synflow)")
    return str(data)


@lru_cache(maxsize=8)
def load_data(spec: str, seed: int = 0, val_frac: float = 0.15, test_frac: float = 0.15,
              limit: int | None = None) -> Splits:
    """Load ``spec`` and split it (stratified by class, seeded). Formats with a test part keep it as test.

    ``limit``: keep at most that many images per class of the training part (everything but an
    official test part) before splitting; the official test part stays whole.
    """
    loaded = load_parts(spec)
    images, test, val = loaded["train"], loaded.get("test"), loaded.get("val")
    rng = np.random.default_rng(seed)
    if limit is not None:
        if int(limit) < 1:
            raise DataError(f"data limit must be at least 1 image per class, got {limit}")
        images = images.subset(limit_per_class(images.y, int(limit), rng))
    if test is None:
        if min(np.bincount(images.y)[np.unique(images.y)]) < 3:
            raise DataError(f"{spec}: every class needs at least 3 images to fill train, val and test")
        tr, va, te = _stratified(images.y, (1 - val_frac - test_frac, val_frac, test_frac), rng)
        train, val, test = images.subset(tr), images.subset(va), images.subset(te)
    elif val is None:
        tr, va = _stratified(images.y, (1 - val_frac, val_frac), rng)
        train, val = images.subset(tr), images.subset(va)
    else:  # every split given as a folder: used as it is
        train = images
    parts = None
    if split_folders_of(spec):
        parts = {"train": "train/", "test": "test/",
                 "val": "val/" if "val" in loaded else f"train/ ({val_frac:.0%} of it, split seed {seed})"}
    mean, std = channel_stats(train.x)
    return Splits(spec, seed, train, val, test, mean, std, limit=limit, parts=parts)


def split_folders_of(spec: str) -> bool:
    """Whether ``spec`` is an image folder whose splits are folders (``train/``, ``test/``, maybe ``val/``)."""
    path = Path(spec).expanduser()
    return (spec not in EMBEDDED and spec not in IDX_SOURCES and not spec.startswith("idx:") and path.is_dir()
            and not _is_cifar(path) and split_folders(path) is not None)


def load_space_for_data(path: str | Path, data: str | None, split_seed: int = 0) -> Any:
    """The space file at ``path``, its ``"num_classes": "data"`` (if it says so) resolved to the class count of
    ``data``: the space and the data are loaded together, so the networks output one logit per class of the
    images they are for. Without data such a file is a one-line error naming --data."""
    from hwnas.spaces.base import classes_from_data, load_space_file

    if data is None or str(data).strip() in ("", "none") or not classes_from_data(path):
        return load_space_file(path)
    return load_space_file(path, num_classes=load_data(str(data), split_seed).num_classes, data=str(data))
