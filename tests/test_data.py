import gzip
import io
import os
import pickle
import struct
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from hwnas.evaluate.data import (EMBEDDED, FASHION_CLASSES, IDX_FILES, IDX_SOURCES, DataError, channel_stats,
                                 load_data, load_images, random_shift)

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # only the fuzz tests need it (dev extra); they skip with the reason
    given = None

FASHION_DIR = IDX_SOURCES["fashion-mnist"][0]
needs_fashion = pytest.mark.skipif(not (FASHION_DIR / "train-images-idx3-ubyte.gz").is_file(),
                                   reason=f"Fashion-MNIST not installed in {FASHION_DIR} "
                                          f"(apt-get install dataset-fashion-mnist; scripts/env.sh does it as root)")


def digits_arrays():
    blob = np.load(EMBEDDED["digits"])
    return blob["x"], blob["y"]


def test_embedded_digits_are_real_and_split_without_overlap():
    s = load_data("digits", seed=0)
    assert s.num_classes == 10 and s.train.x.shape[1:] == (8, 8, 1)
    assert len(s.train) + len(s.val) + len(s.test) == 1797
    # stratified: every class in every split, in proportion
    for part in (s.train, s.val, s.test):
        counts = np.bincount(part.y, minlength=10)
        assert counts.min() > 0 and counts.max() - counts.min() <= max(3, 0.1 * counts.mean())
    # no image index shared between splits: compare raw rows
    rows = {p: {r.tobytes() + bytes([l]) for r, l in zip(part.x, part.y)} for p, part in
            (("train", s.train), ("val", s.val), ("test", s.test))}
    x, y = digits_arrays()
    n_unique = len({r.tobytes() + bytes([l]) for r, l in zip(x, y)})
    assert len(rows["train"] | rows["val"] | rows["test"]) == n_unique


def test_splits_are_seeded():
    a, b, c = load_data("digits", 0), load_data("digits", 0), load_data("digits", 1)
    assert a.digest == b.digest and a.digest != c.digest
    assert a.config()["data_digest"] == a.digest


def test_inputs_resize_normalise_and_expand_channels():
    s = load_data("digits")
    x, y = s.tensors("val", 28, 3)
    assert x.shape == (len(s.val), 3, 28, 28) and x.dtype == torch.float32 and len(y) == len(s.val)
    assert torch.equal(x[:, 0], x[:, 1])  # grey replicated
    train = s.inputs(s.train.x, 8, 1)
    assert abs(float(train.mean())) < 1e-3 and abs(float(train.std()) - 1) < 1e-2


def test_random_shift_moves_content_and_keeps_shape():
    x = torch.as_tensor(load_data("digits").train.x[:16])
    g = torch.Generator().manual_seed(0)
    y = random_shift(x, g)
    assert y.shape == x.shape and y.dtype == torch.uint8
    assert not torch.equal(x, y)
    assert torch.equal(random_shift(x, torch.Generator().manual_seed(0)), y)


def test_npz_round_trip(tmp_path, tiny_data):
    s = load_data(tiny_data)
    assert len(s.train) + len(s.val) + len(s.test) == 300 and s.num_classes == 10


def test_cifar_python_batches(tmp_path):
    rgb = write_cifar(tmp_path)
    load_data.cache_clear()
    s = load_data(str(tmp_path))
    assert s.train.x.shape[1:] == (32, 32, 3) and len(s.test) == 40 and len(s.train) + len(s.val) == 80
    assert s.train.classes[3] == "d3"
    assert np.array_equal(s.test.x, rgb[80:])
    (tmp_path / "test_batch").unlink()
    load_data.cache_clear()
    with pytest.raises(DataError, match="missing test_batch"):
        load_data(str(tmp_path))


def test_image_folder(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    x, y = digits_arrays()
    for i in range(40):
        d = tmp_path / f"class_{y[i]}"
        d.mkdir(exist_ok=True)
        Image.fromarray(x[i, :, :, 0]).save(d / f"{i}.png")
    images, test = load_images(str(tmp_path))
    assert test is None and images.x.shape == (40, 8, 8, 1)
    order = sorted(range(40), key=lambda i: (f"class_{y[i]}", f"{i}.png"))
    assert np.array_equal(images.x[:, :, :, 0], x[order, :, :, 0])
    Image.fromarray(np.zeros((9, 8), np.uint8)).save(tmp_path / f"class_{y[0]}" / "odd.png")
    with pytest.raises(DataError, match="mixed sizes"):
        load_images(str(tmp_path))


def test_a_16_bit_image_folder_is_read_at_its_brightness_not_clipped(tmp_path):
    """Issue 47's sweep: 16-bit grey PNGs were converted with Pillow's convert("L"), which clips every value
    over 255 (a 16-bit image all but white), so a model trained on them saw none of their detail."""
    Image = pytest.importorskip("PIL.Image")
    x, y = digits_arrays()
    for i in range(20):
        d = tmp_path / f"class_{y[i]}"
        d.mkdir(exist_ok=True)
        Image.fromarray(x[i, :, :, 0].astype(np.uint16) * 257).save(d / f"{i}.png")
    images, _ = load_images(str(tmp_path))
    order = sorted(range(20), key=lambda i: (f"class_{y[i]}", f"{i}.png"))
    assert np.array_equal(images.x[:, :, :, 0], x[order, :, :, 0])


def _png_split(root, split, classes, n, start=0):
    Image = pytest.importorskip("PIL.Image")
    x, y = digits_arrays()
    for c in classes:
        d = root / split / c
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(x[start + i, :, :, 0]).save(d / f"{i}.png")


def test_image_folder_with_train_and_test_folders_uses_them_as_the_splits(tmp_path):
    """root/train/CLASS/*.png and root/test/CLASS/*.png (torchvision ImageFolder users' layout): the folders are
    the splits, val comes from train by the split seed, and the data config says so."""
    _png_split(tmp_path, "train", ["cat", "dog", "fox"], 10)
    _png_split(tmp_path, "test", ["cat", "dog", "fox"], 4, start=100)
    s = load_data(str(tmp_path), seed=3)
    assert s.train.classes == ("cat", "dog", "fox") and len(s.test) == 12 and len(s.train) + len(s.val) == 30
    assert s.num_classes == 3 and len(s.val) > 0
    assert s.config()["splits_from"] == {"train": "train/", "test": "test/", "val": "train/ (15% of it, split seed 3)"}
    _png_split(tmp_path, "val", ["cat", "dog", "fox"], 2, start=200)
    s = load_data.__wrapped__(str(tmp_path), seed=3)  # not the cached load of the folder before val/ was added
    assert (len(s.train), len(s.val), len(s.test)) == (30, 6, 12)
    assert s.config()["splits_from"]["val"] == "val/"


def test_split_folders_whose_classes_differ_are_one_line(tmp_path):
    _png_split(tmp_path, "train", ["cat", "dog", "fox"], 4)
    _png_split(tmp_path, "test", ["cat", "dog", "owl"], 2)
    with pytest.raises(DataError, match=r"classes differ \(test/ lacks fox; test/ has owl, which train/ lacks\)"):
        load_images(str(tmp_path))
    import json

    from conftest import ROOT, cli_here

    space = json.loads((ROOT / "hwnas" / "spaces" / "demo.json").read_text())
    (tmp_path / "space.json").write_text(json.dumps({**space, "num_classes": "data"}))
    r = cli_here("sample", "--space-file", str(tmp_path / "space.json"), "--data", str(tmp_path))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "test/ lacks fox" in r.stderr, r.stderr


@pytest.mark.parametrize("x, y, match", [
    (np.zeros((10, 8, 8, 5), np.uint8), np.arange(10) % 2, "C 1 or 3"),
    (np.zeros((10, 8, 8, 1), np.float32), np.arange(10) % 2, "uint8"),
    (np.zeros((10, 8, 8, 1), np.uint8), np.arange(9) % 2, "one label per image"),
    (np.zeros((10, 8, 8, 1), np.uint8), np.zeros(10, int), "at least 2 classes"),
    (np.zeros((10, 8, 8, 1), np.uint8), np.arange(10) - 1, "labels must lie in"),
])
def test_bad_npz(tmp_path, x, y, match):
    path = tmp_path / "bad.npz"
    np.savez(path, x=x, y=y)
    with pytest.raises(DataError, match=match):
        load_images(str(path))


def test_bad_paths(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_images(str(tmp_path / "nope"))
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(DataError, match="must be .npz"):
        load_images(str(tmp_path / "a.txt"))
    np.savez(tmp_path / "nox.npz", images=np.zeros(3))
    with pytest.raises(DataError, match="needs arrays 'x'"):
        load_images(str(tmp_path / "nox.npz"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="one sub-directory per class"):
        load_images(str(tmp_path / "empty"))


def test_space_compatibility(demo):
    s = load_data("digits")
    s.check_space(demo.in_channels, demo.num_classes)
    with pytest.raises(DataError, match="10 classes but the space's networks output 5"):
        s.check_space(3, 5)


# -- CIFAR pickles: only what a batch contains is unpickled ----------------------------------------------------
def cifar_dump(obj, protocol: int, numpy1_names: bool = False) -> bytes:
    """A pickle as Python writes it; numpy1_names spells numpy's module as numpy 1.x (and CIFAR's files) do
    (protocols 0-2 only: their module names are text lines, later protocols prefix them with their length)."""
    blob = pickle.dumps(obj, protocol=protocol)
    return blob.replace(b"numpy._core.", b"numpy.core.") if numpy1_names else blob


def write_cifar(root: Path, protocol: int = 4, numpy1_names: bool = False) -> np.ndarray:
    """A real CIFAR-10-format directory (digits upscaled to 32x32x3): 2 train batches, a test batch, meta."""
    x, y = digits_arrays()
    rgb = np.repeat(np.kron(x[:120, :, :, 0], np.ones((4, 4), np.uint8))[..., None], 3, axis=3)
    flat = rgb.transpose(0, 3, 1, 2).reshape(len(rgb), -1)
    batches = {f"data_batch_{i}": slice((i - 1) * 40, i * 40) for i in (1, 2)} | {"test_batch": slice(80, 120)}
    for name, part in batches.items():
        d = {b"batch_label": name.encode(), b"data": flat[part], b"labels": y[part].tolist(),
             b"filenames": [f"{i}.png".encode() for i in range(40)]}
        (root / name).write_bytes(cifar_dump(d, protocol, numpy1_names))
    meta = {b"label_names": [f"d{i}".encode() for i in range(10)], b"num_vis": 3072}
    (root / "batches.meta").write_bytes(cifar_dump(meta, protocol, numpy1_names))
    return rgb


@pytest.mark.parametrize("protocol, numpy1_names", [(0, True), (2, False), (2, True), (4, False), (5, False)])
def test_cifar_batches_of_every_pickle_protocol_load(tmp_path, protocol, numpy1_names):
    rgb = write_cifar(tmp_path, protocol, numpy1_names)
    if numpy1_names:
        assert b"numpy.core.multiarray" in (tmp_path / "test_batch").read_bytes()
    train, test = load_images(str(tmp_path))
    assert np.array_equal(test.x, rgb[80:]) and np.array_equal(train.x, rgb[:80])
    assert train.classes[9] == "d9"


class RunsACommand:
    """What an attacker pickles: unpickling it calls os.system."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.parametrize("victim", ["data_batch_2", "batches.meta"])
def test_cifar_pickle_that_would_run_code_is_refused(tmp_path, victim):
    write_cifar(tmp_path)
    marker = tmp_path / "pwned"
    evil = {b"data": RunsACommand(f"touch {marker}"), b"labels": [0]}
    (tmp_path / victim).write_bytes(pickle.dumps(evil))
    with pytest.raises(DataError, match=rf"{victim} contains a pickled posix\.system, which a CIFAR batch never "
                                        rf"does; refusing to load it \(pickles can run code\)"):
        load_images(str(tmp_path))
    assert not marker.exists()


@pytest.mark.parametrize("content, match", [
    (pickle.dumps([1, 2, 3]), "need a dict with b'data' and b'labels', got list"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}), "need a dict with b'data' and b'labels'"),
    (pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}), "not a CIFAR python batch"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}), "2 images but 1 labels"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]})[:-40], "not a CIFAR python batch"),
    (b"", "not a CIFAR python batch"),
    (pickle.dumps(RunsACommand("true")).replace(b"posix", b"posiy"), "contains a pickled posiy.system"),
])
def test_bad_cifar_batches(tmp_path, content, match):
    write_cifar(tmp_path)
    (tmp_path / "data_batch_1").write_bytes(content)
    with pytest.raises(DataError, match=match):
        load_images(str(tmp_path))


# -- .npz: every way a file can be wrong is a DataError ----------------------------------------------------------
def save_npz(path: Path, compressed: bool = False, **arrays) -> Path:
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


def test_npz_with_an_official_test_part_keeps_it_as_test(tmp_path):
    x, y = digits_arrays()
    path = save_npz(tmp_path / "d.npz", x=x[:300], y=y[:300], x_test=x[300:400], y_test=y[300:400])
    load_data.cache_clear()
    s = load_data(str(path))
    assert np.array_equal(s.test.x, x[300:400]) and len(s.train) + len(s.val) == 300


@pytest.mark.parametrize("arrays, match", [
    ({"y": np.arange(10) % 2}, "needs arrays 'x'.*missing 'x' \\(it has 'y'\\)"),
    ({"x": np.zeros((10, 8, 8, 1), np.uint8)}, "missing 'y'"),
    ({"x": np.zeros((10, 8), np.uint8), "y": np.arange(10) % 2}, "N x H x W x C"),
    ({"x": np.zeros((10, 0, 0, 1), np.uint8), "y": np.arange(10) % 2}, "images are 0x0 pixels"),
    ({"x": np.zeros((10, 8, 8), np.int64), "y": np.arange(10) % 2}, "must be uint8"),
    ({"x": np.zeros((0, 8, 8), np.uint8), "y": np.zeros(0, int)}, "no images"),
    ({"x": np.zeros((10, 8, 8), np.uint8), "y": np.arange(10) * 10**9}, "label 9000000000 found"),
    ({"x": np.zeros((10, 8, 8), np.uint8), "y": np.arange(10) % 2 + 0.5}, "labels must be integers"),
    ({"x": np.zeros((10, 8, 8), np.uint8), "y": np.arange(10) % 2, "classes": np.array(["a", "b"]).reshape(2, 1)},
     "'classes' must be a 1-D array"),
    ({"x": np.zeros((10, 8, 8), np.uint8), "y": np.arange(10) % 2, "classes": np.frombuffer(b"\xff" * 8, "<U1")},
     "'classes' holds characters that are not Unicode"),
    ({"x": np.zeros((10, 8, 8), np.uint8), "y": np.arange(10) % 2, "x_test": np.zeros((4, 8, 8), np.uint8)},
     "needs both 'x_test' and 'y_test'"),
    ({"x": np.zeros((10, 8, 8), np.uint8), "y": np.arange(10) % 2, "x_test": np.zeros((4, 9, 8), np.uint8),
      "y_test": np.arange(4) % 2}, "test images are \\(9, 8, 1\\)"),
    ({"x": np.zeros((10, 8, 8), np.uint8), "y": np.array([[0, 1]] * 5, dtype=object)}, "dtype object"),
])
def test_npz_contents_that_cannot_be_used(tmp_path, arrays, match):
    with pytest.raises(DataError, match=match):
        load_images(str(save_npz(tmp_path / "bad.npz", **arrays)))


@pytest.mark.parametrize("compressed", [False, True])
def test_truncated_or_corrupt_npz(tmp_path, compressed):
    x, y = digits_arrays()
    blob = save_npz(tmp_path / "ok.npz", compressed, x=x[:50], y=y[:50]).read_bytes()
    for cut in (len(blob) // 2, len(blob) - 30, 10, 0):
        (tmp_path / "cut.npz").write_bytes(blob[:cut])
        with pytest.raises(DataError, match="cut.npz: not a readable .npz file"):
            load_images(str(tmp_path / "cut.npz"))
    flipped = bytearray(blob)
    flipped[len(blob) // 3] ^= 0xFF  # inside x's data: the CRC check catches it
    (tmp_path / "flip.npz").write_bytes(bytes(flipped))
    with pytest.raises(DataError, match="flip.npz"):
        load_images(str(tmp_path / "flip.npz"))
    np.save(tmp_path / "arr.npy", x[:5])
    (tmp_path / "arr.npz").write_bytes((tmp_path / "arr.npy").read_bytes())
    with pytest.raises(DataError, match="not a readable .npz file.*np.savez"):
        load_images(str(tmp_path / "arr.npz"))


def test_npz_whose_header_claims_more_than_it_holds(tmp_path):
    x, y = digits_arrays()
    path = tmp_path / "liar.npz"
    with zipfile.ZipFile(path, "w") as zf:
        header = io.BytesIO()  # 2 billion images announced, 20 stored: refused before anything is allocated
        np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                      "shape": (2_000_000_000, 8, 8, 1)})
        zf.writestr("x.npy", header.getvalue() + x[:20].tobytes())
        buf = io.BytesIO()
        np.save(buf, y[:20])
        zf.writestr("y.npy", buf.getvalue())
    with pytest.raises(DataError, match="'x' is truncated or corrupt: its header says shape \\(2000000000, 8, 8, 1\\)"):
        load_images(str(path))


def test_npz_header_that_numpy_cannot_parse(tmp_path):
    path = tmp_path / "garbled.npz"
    with zipfile.ZipFile(path, "w") as zf:
        text = b"{'descr': '|u1', 'fortran_order': False, 'shape': (3,"  # cut inside the tuple
        zf.writestr("x.npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text)
        zf.writestr("y.npy", b"")
    with pytest.raises(DataError, match="garbled.npz: not a readable .npz file"):
        load_images(str(path))


def check_loaded_or_data_error(path: Path) -> None:
    """The property the fuzz tests check: a file loads as a valid data set or fails as DataError, nothing else."""
    try:
        images, test = load_images(str(path))
    except DataError:
        return
    assert images.x.dtype == np.uint8 and images.x.ndim == 4 and images.y.dtype == np.int64
    assert test is None or test.x.shape[1:] == images.x.shape[1:]


def real_npz_bytes(compressed: bool) -> bytes:
    x, y = digits_arrays()
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, x=x[:12, :, :, 0], y=y[:12], x_test=x[12:16],
                                                      y_test=y[12:16], classes=np.array(list("abcdefghij")))
    return buf.getvalue()


REAL_NPZ = {c: real_npz_bytes(c) for c in (False, True)}


def fuzz_file(content: bytes, suffix: str = ".npz") -> Path:
    fd, name = tempfile.mkstemp(suffix=suffix)
    with os.fdopen(fd, "wb") as f:
        f.write(content)
    return Path(name)


if given is not None:
    @settings(max_examples=100, deadline=None, database=None)
    @given(st.binary(max_size=4096))
    def test_fuzz_random_bytes_as_npz(content):
        path = fuzz_file(content)
        try:
            check_loaded_or_data_error(path)
        finally:
            path.unlink()

    @settings(max_examples=100, deadline=None, database=None)
    @given(compressed=st.booleans(), data=st.data())
    def test_fuzz_mutated_real_npz(compressed, data):
        blob = bytearray(REAL_NPZ[compressed])
        for pos, value in data.draw(st.lists(st.tuples(st.integers(0, len(blob) - 1), st.integers(0, 255)),
                                             max_size=6)):
            blob[pos] = value
        blob = blob[:data.draw(st.integers(0, len(blob)))] if data.draw(st.booleans()) else blob
        path = fuzz_file(bytes(blob))
        try:
            check_loaded_or_data_error(path)
        finally:
            path.unlink()
else:
    @pytest.mark.skip(reason="hypothesis is not installed: pip install 'hypothesis>=6.100'")
    def test_fuzz_npz():
        pass


# -- IDX (MNIST-style) ---------------------------------------------------------------------------------------------
def idx_bytes(arr: np.ndarray, magic: int | None = None, dims: tuple[int, ...] | None = None) -> bytes:
    """IDX as MNIST writes it: big-endian magic (0x0000TTDD: type, ndim), uint32 dims, then the raw data."""
    magic = 0x800 + arr.ndim if magic is None else magic
    dims = arr.shape if dims is None else dims
    return struct.pack(">I", magic) + struct.pack(f">{len(dims)}I", *dims) + arr.astype(np.uint8).tobytes()


def write_idx_dir(root: Path, gz: bool = True, n_train: int = 300, n_test: int = 100, **override: bytes) -> Path:
    """The four IDX files of real digits images (gzipped or not); ``override`` replaces a file's bytes."""
    x, y = digits_arrays()
    parts = {IDX_FILES[0]: x[:n_train, :, :, 0], IDX_FILES[1]: y[:n_train],
             IDX_FILES[2]: x[n_train:n_train + n_test, :, :, 0], IDX_FILES[3]: y[n_train:n_train + n_test]}
    root.mkdir(exist_ok=True)
    for name, arr in parts.items():
        content = override.get(name.replace("-", "_"), idx_bytes(arr))
        if gz:
            with gzip.open(root / f"{name}.gz", "wb") as f:
                f.write(content)
        else:
            (root / name).write_bytes(content)
    return root


@pytest.mark.parametrize("gz", [True, False])
def test_idx_directory_reads_exactly_and_keeps_t10k_as_test(tmp_path, gz):
    root = write_idx_dir(tmp_path / "mnist", gz=gz)
    x, y = digits_arrays()
    train, test = load_images(f"idx:{root}")
    assert np.array_equal(train.x, x[:300]) and np.array_equal(train.y, y[:300])
    assert np.array_equal(test.x, x[300:400]) and np.array_equal(test.y, y[300:400])
    assert train.classes == tuple(str(i) for i in range(10)) and train.x.flags.writeable
    load_data.cache_clear()
    s = load_data(f"idx:{root}", seed=3)
    assert len(s.train) + len(s.val) == 300 and np.array_equal(s.test.x, x[300:400])


def test_idx_files_in_the_dotted_spelling(tmp_path):
    root = write_idx_dir(tmp_path / "k", gz=False)
    for name in IDX_FILES:
        (root / name).rename(root / name.replace("-idx", ".idx"))
    assert len(load_images(f"idx:{root}")[0]) == 300


x8 = digits_arrays()[0][:300, :, :, 0]
y8 = digits_arrays()[1][:300]


@pytest.mark.parametrize("override, match", [
    ({"train_images_idx3_ubyte": idx_bytes(x8, magic=0x0803_0000)}, "not an IDX file"),
    ({"train_images_idx3_ubyte": b"PK\x03\x04" + idx_bytes(x8)}, "not an IDX file"),
    ({"train_images_idx3_ubyte": idx_bytes(x8.astype(np.float32), magic=0x0D03)}, "IDX element type 0x0d"),
    ({"train_images_idx3_ubyte": idx_bytes(x8.reshape(300, 64))}, "with 2 dimension\\(s\\).*images.*need 3"),
    ({"train_labels_idx1_ubyte": idx_bytes(np.stack([y8, y8], 1))}, "with 2 dimension\\(s\\).*labels need 1"),
    ({"train_images_idx3_ubyte": idx_bytes(x8)[:-100]}, "truncated: expected 19200 bytes of data, the file has 19100"),
    ({"train_images_idx3_ubyte": idx_bytes(x8)[:10]}, "header\\): truncated"),
    ({"train_images_idx3_ubyte": idx_bytes(x8, dims=(4_000_000_000, 1000, 1000))},  # fails without allocating 4 PB
     "truncated: expected 4000000000000000 bytes"),
    ({"train_images_idx3_ubyte": idx_bytes(x8) + b"\0"}, "more bytes than its header's dimensions"),
    ({"t10k_labels_idx1_ubyte": idx_bytes(y8[:99])}, "holds 100 images but .*t10k-labels.* holds 99 labels"),
    ({"train_images_idx3_ubyte": idx_bytes(x8[:0], dims=(300, 0, 0))}, "images are 0x0 pixels"),
    ({"train_images_idx3_ubyte": b""}, "not an IDX file \\(it starts with nothing"),
])
def test_bad_idx_files(tmp_path, override, match):
    gz = write_idx_dir(tmp_path / "gz", gz=True, **override)
    with pytest.raises(DataError, match=match):
        load_images(f"idx:{gz}")
    plain = write_idx_dir(tmp_path / "plain", gz=False, **override)
    with pytest.raises(DataError, match=match):
        load_images(f"idx:{plain}")


def test_idx_missing_file_corrupt_gzip_and_not_a_directory(tmp_path):
    root = write_idx_dir(tmp_path / "d")
    (root / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte \\(or t10k-labels-idx1-ubyte.gz\\) is missing"):
        load_images(f"idx:{root}")
    blob = gzip.compress(idx_bytes(y8[:100]))
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(blob[:-8] + bytes(8))  # CRC and size zeroed
    with pytest.raises(DataError, match="cannot read this IDX file"):
        load_images(f"idx:{root}")
    with pytest.raises(DataError, match="not a directory"):
        load_images(f"idx:{tmp_path / 'nope'}")


@needs_fashion
def test_fashion_mnist_from_the_debian_package():
    train, test = load_images("fashion-mnist")
    assert train.x.shape == (60000, 28, 28, 1) and test.x.shape == (10000, 28, 28, 1)
    assert np.array_equal(np.bincount(train.y), [6000] * 10) and np.array_equal(np.bincount(test.y), [1000] * 10)
    assert train.classes == FASHION_CLASSES and train.y[0] == 9 and test.y[0] == 9  # both start with an ankle boot
    s = load_data("fashion-mnist", limit=20)
    assert np.array_equal(np.bincount(s.train.y) + np.bincount(s.val.y), [20] * 10)
    assert len(s.test) == 10000 and s.config()["data_limit"] == 20


def test_fashion_mnist_absent_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(IDX_SOURCES, "fashion-mnist", (tmp_path, FASHION_CLASSES, "apt-get install it"))
    with pytest.raises(DataError, match="'fashion-mnist' is not installed .*apt-get install it"):
        load_images("fashion-mnist")


# -- --data-limit and the split statistics ---------------------------------------------------------------------
def test_data_limit_is_per_class_stratified_and_seeded():
    a, b, c = load_data("digits", 0, limit=20), load_data("digits", 0, limit=20), load_data("digits", 1, limit=20)
    counts = np.bincount(a.train.y) + np.bincount(a.val.y) + np.bincount(a.test.y)
    assert np.array_equal(counts, [20] * 10) and np.bincount(a.val.y).min() >= 2
    assert a.digest == b.digest != c.digest and a.config()["data_limit"] == 20
    assert "data_limit" not in load_data("digits").config()
    with pytest.raises(DataError, match="at least 1 image per class"):
        load_data("digits", limit=0)


def test_channel_stats_match_the_float64_formula():
    x = load_data("digits").train.x
    mean, std = channel_stats(x, chunk=100)
    f = x.astype(np.float64) / 255.0
    assert np.allclose(mean, f.mean(axis=(0, 1, 2)), rtol=1e-6) and np.allclose(std, f.std(axis=(0, 1, 2)), rtol=1e-6)


# -- the embedded Fashion-MNIST subset ---------------------------------------------------------------------------
def test_embedded_fashion_subset():
    s = load_data("fashion-small")
    assert s.train.classes == FASHION_CLASSES and s.train.x.shape[1:] == (28, 28, 1)
    assert np.array_equal(np.bincount(s.train.y) + np.bincount(s.val.y), [600] * 10)
    assert np.array_equal(np.bincount(s.test.y), [200] * 10)
    blob = np.load(EMBEDDED["fashion-small"])
    assert "MIT" in str(blob["license"]) and "zalandoresearch/fashion-mnist" in str(blob["source"])
    assert EMBEDDED["fashion-small"].stat().st_size <= 4 * 2**20
    assert len(load_data("fashion-small", limit=5).test) == 2000  # a limit leaves the official test part whole
    with pytest.raises(TypeError):
        load_data()  # no default data set: hwnas never picks one for the user


@needs_fashion
def test_embedded_fashion_subset_is_the_originals_at_its_recorded_positions():
    train, test = load_images("fashion-mnist")
    blob = np.load(EMBEDDED["fashion-small"])
    assert np.array_equal(blob["x"], train.x[blob["train_index"]])
    assert np.array_equal(blob["y_test"], test.y[blob["test_index"]])
