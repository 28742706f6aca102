"""Image data for the accuracy evaluators: the embedded default, users' own formats, seeded splits.

Everything downstream (supernet training, proxies, short training, finalize's
parity and int8 calibration) turns images into network inputs through
:func:`Splits.inputs`, so a model is always fed the same preprocessing.

Formats (``load_data(spec)``):

* ``digits`` — embedded: UCI handwritten digits (1,797 real 8x8 grey images, 10
  classes), shipped in the package so the demo needs no download and no extra
  dependency; upsampled to the space's resolution.
* ``PATH.npz`` — arrays ``x`` (uint8, N x H x W x C) and ``y`` (N integer labels),
  optional ``classes`` (names).
* a CIFAR-10/100 "python version" directory (``data_batch_*``/``test_batch`` or
  ``train``/``test``): its own test part is our test split.
* an ImageFolder directory (``root/CLASS/*.png|jpg…``; needs Pillow).
"""
from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from hwnas.errors import InputError

EMBEDDED = {"digits": Path(__file__).resolve().parents[1] / "data" / "digits.npz"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


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
    if y.min() < 0 or y.max() >= len(images.classes):
        raise DataError(f"{where}: labels must lie in 0..{len(images.classes) - 1} (one per class), "
                        f"found {int(y.min())}..{int(y.max())}")
    present = np.unique(y)
    if len(present) < 2:
        raise DataError(f"{where}: all images have label {int(present[0])}; a classifier needs at least 2 classes")
    return ImageSet(x, y.astype(np.int64), images.classes, images.source)


def _from_npz(path: Path) -> ImageSet:
    try:
        blob = np.load(path, allow_pickle=False)
        x, y = blob["x"], blob["y"]
        classes = tuple(str(c) for c in blob["classes"]) if "classes" in blob.files else None
    except KeyError as e:
        raise DataError(f"{path}: an .npz data set needs arrays 'x' (N x H x W x C uint8) and 'y' (N labels); "
                        f"missing {e}") from None
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from None
    if x.ndim == 3:  # N x H x W grey
        x = x[..., None]
    if classes is None:
        classes = tuple(str(i) for i in range(int(y.max()) + 1 if y.size and np.issubdtype(y.dtype, np.integer) else 0))
    return ImageSet(x, y, classes, str(path))


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


def _is_cifar(path: Path) -> bool:
    return (path / "data_batch_1").is_file() or ((path / "train").is_file() and (path / "meta").is_file())


def _from_cifar(path: Path) -> tuple[ImageSet, ImageSet]:
    """CIFAR python batches; returns (train part, official test part)."""
    if (path / "data_batch_1").is_file():
        train_files, test_files = sorted(path.glob("data_batch_*")), [path / "test_batch"]
        label_key, meta, names_key = b"labels", path / "batches.meta", b"label_names"
    else:
        train_files, test_files = [path / "train"], [path / "test"]
        label_key, meta, names_key = b"fine_labels", path / "meta", b"fine_label_names"

    def read(files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for f in files:
            if not f.is_file():
                raise DataError(f"{path}: CIFAR directory is missing {f.name}")
            try:
                d = _unpickle(f)
                xs.append(np.asarray(d[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
                ys.append(np.asarray(d[label_key], np.int64))
            except (KeyError, ValueError, pickle.UnpicklingError, EOFError) as e:
                raise DataError(f"{f}: not a CIFAR python batch ({type(e).__name__}: {e})") from None
        return np.concatenate(xs), np.concatenate(ys)

    xtr, ytr = read(train_files)
    xte, yte = read(test_files)
    n = int(max(ytr.max(), yte.max())) + 1
    classes = tuple(str(i) for i in range(n))
    if meta.is_file():
        names = _unpickle(meta).get(names_key)
        if names and len(names) >= n:
            classes = tuple(c.decode() if isinstance(c, bytes) else str(c) for c in names)
    return ImageSet(xtr, ytr, classes, str(path)), ImageSet(xte, yte, classes, f"{path} (test part)")


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
                    im = im.convert("L") if im.mode in ("L", "1", "I;16") else im.convert("RGB")
                    arr = np.asarray(im, np.uint8)
            except OSError as e:
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


def load_images(spec: str) -> tuple[ImageSet, ImageSet | None]:
    """Read a data set; the second item is its own test part when the format has one."""
    if spec in EMBEDDED:
        return validate(_from_npz(EMBEDDED[spec]), spec), None
    path = Path(spec)
    if not path.exists():
        raise DataError(f"data set {spec!r} not found: give {', '.join(EMBEDDED)} (embedded), an .npz file, "
                        f"a CIFAR python directory or an image folder")
    if path.is_file():
        if path.suffix != ".npz":
            raise DataError(f"{path}: a data file must be .npz with arrays x and y")
        return validate(_from_npz(path), str(path)), None
    if _is_cifar(path):
        train, test = _from_cifar(path)
        return validate(train, str(path)), validate(test, f"{path} (test part)")
    return validate(_from_folder(path), str(path)), None


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
        return {"data": self.spec, "split_seed": self.seed, "sizes": [len(self.train), len(self.val), len(self.test)],
                "data_digest": self.digest}

    def check_space(self, in_channels: int, num_classes: int) -> None:
        if self.num_classes > num_classes:
            raise DataError(f"data set {self.spec!r} has {self.num_classes} classes but the space's networks "
                            f"output {num_classes}; set num_classes to {self.num_classes} in the space file")
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


@lru_cache(maxsize=8)
def load_data(spec: str = "digits", seed: int = 0, val_frac: float = 0.15, test_frac: float = 0.15) -> Splits:
    """Load ``spec`` and split it (stratified by class, seeded). Formats with a test part keep it as test."""
    images, test = load_images(spec)
    rng = np.random.default_rng(seed)
    if test is None:
        if min(np.bincount(images.y)[np.unique(images.y)]) < 3:
            raise DataError(f"{spec}: every class needs at least 3 images to fill train, val and test")
        tr, va, te = _stratified(images.y, (1 - val_frac - test_frac, val_frac, test_frac), rng)
        train, val, test = images.subset(tr), images.subset(va), images.subset(te)
    else:
        tr, va = _stratified(images.y, (1 - val_frac, val_frac), rng)
        train, val = images.subset(tr), images.subset(va)
    x = train.x.astype(np.float64) / 255.0
    mean = x.mean(axis=(0, 1, 2))
    std = np.maximum(x.std(axis=(0, 1, 2)), 1e-3)
    return Splits(spec, seed, train, val, test, mean.astype(np.float32), std.astype(np.float32))
