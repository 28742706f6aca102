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

from hwnas.evaluate.data import EMBEDDED, DataError, load_data, load_images, random_shift

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # only the fuzz tests need it (dev extra); they skip with the reason
    given = None


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
