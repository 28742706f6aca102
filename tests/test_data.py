import pickle

import numpy as np
import pytest
import torch

from hwnas.evaluate.data import EMBEDDED, DataError, load_data, load_images, random_shift


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
    x, y = digits_arrays()
    rgb = np.repeat(np.kron(x[:120, :, :, 0], np.ones((4, 4), np.uint8))[..., None], 3, axis=3)  # 32x32x3
    flat = rgb.transpose(0, 3, 1, 2).reshape(len(rgb), -1)
    for i in range(1, 3):
        with open(tmp_path / f"data_batch_{i}", "wb") as f:
            pickle.dump({b"data": flat[(i - 1) * 40:i * 40], b"labels": y[(i - 1) * 40:i * 40].tolist()}, f)
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": flat[80:], b"labels": y[80:120].tolist()}, f)
    with open(tmp_path / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"d{i}".encode() for i in range(10)]}, f)
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
