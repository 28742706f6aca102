"""The bundle says how to feed its model: preprocess.json, the models' metadata and predict.py, end to end on a
user's own image folder (3 classes of 24x24 RGB PNGs, a model at 16x16: the resize shrinks, antialiased)."""
import ast
import json
import subprocess
import sys

import numpy as np
import pytest

from hwnas.finalize.preprocess import METADATA_KEY, read_from_model

pytest.importorskip("PIL")
pytestmark = pytest.mark.slow  # a LUT, a search and a finalize: about a minute on 2 cores

CLASSES = ("circle", "stripes", "zigzag")  # folder names, deliberately not in label order of creation


def _image(kind: str, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[:24, :24]
    if kind == "stripes":
        base = (xx // 3 % 2) * 200
    elif kind == "circle":
        base = ((yy - 12) ** 2 + (xx - 12) ** 2 < 60) * 220
    else:
        base = ((xx + yy) // 4 % 2) * 180
    img = np.stack([base, base[::-1], 255 - base], axis=-1) + rng.normal(0, 25, (24, 24, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def folder_bundle(tmp_path_factory, quick_policy):
    from PIL import Image

    from hwnas.finalize import finalize
    from hwnas.measuring.profiling import build_lut
    from hwnas.search import run_search
    from hwnas.spaces.base import space_from_dict

    root = tmp_path_factory.mktemp("user")
    rng = np.random.default_rng(0)
    for kind in reversed(CLASSES):
        (root / "images" / kind).mkdir(parents=True)
        for i in range(20):
            Image.fromarray(_image(kind, rng)).save(root / "images" / kind / f"{i:02d}.png")
    space = space_from_dict({"kind": "cell", "name": "three-classes", "channels": [4, 8, 8], "cells_per_stage": 1,
                             "nodes": 3, "ops": ["none", "skip", "conv3x3"], "resolutions": [16],
                             "in_channels": 3, "num_classes": 3})
    build_lut("ort-cpu", space, root / "lut.json", profiler_options={"policy": quick_policy}, calib_archs=6,
              progress=False, processes=0, command="pytest: preprocess")
    data = str(root / "images")
    run_search(root / "lut.json", root / "run", evaluator="proxy:synflow", population=4, generations=1, seed=0,
               progress=False, data=data)
    out = root / "dist"
    finalize(root / "run", out, processes=0, parity_images=8, log=lambda *a, **k: None)
    return root, out


def test_the_bundle_records_the_preprocessing_and_the_class_names(folder_bundle):
    _, out = folder_bundle
    pre = json.loads((out / "preprocess.json").read_text())
    assert pre["classes"] == list(CLASSES)  # the folders' names, in label order
    assert pre["image_mode"] == "RGB" and pre["input_shape"] == [1, 3, 16, 16] and pre["scale"] == pytest.approx(1 / 255)
    assert pre["resize"] == {"size": [16, 16], "from": [24, 24], "interpolation": "bilinear", "align_corners": False,
                             "antialias": True, "grey_to_channels": False}
    assert len(pre["mean"]) == len(pre["std"]) == 3 and all(s > 0 for s in pre["std"])
    assert pre["data"]["data"].endswith("images")
    report = json.loads((out / "report.json").read_text())
    assert report["classes"] == list(CLASSES) and "predict.py" in report["files"]
    for model in ("model.onnx", "model.ort"):  # the ort file converted from the ONNX one carries it too
        assert read_from_model(out / model) == pre, model


def test_predict_py_classifies_an_image_file_as_hwnas_preprocesses_it(folder_bundle):
    """The script's preprocessing (Pillow, numpy) gives the model the input hwnas trained it on: the same
    logits as hwnas's own Splits.inputs followed by ONNX Runtime, for every image of one class folder."""
    from hwnas.evaluate.data import load_data
    from hwnas.finalize.onnx_export import ort_predict, ort_session
    from PIL import Image
    import torch

    root, out = folder_bundle
    images = sorted((root / "images" / "zigzag").glob("*.png"))[:5]
    r = subprocess.run([sys.executable, str(out / "predict.py"), *map(str, images), "--json"], capture_output=True,
                       text=True, timeout=120, cwd=root)
    assert r.returncode == 0, r.stderr
    got = [json.loads(line) for line in r.stdout.splitlines()]
    splits = load_data(str(root / "images"))
    raw = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in images])
    want = ort_predict(ort_session(out / "model.onnx"), splits.inputs(torch.as_tensor(raw), 16, 3))
    assert [g["image"] for g in got] == list(map(str, images))
    np.testing.assert_allclose([g["logits"] for g in got], want, atol=2e-3)
    assert [g["class"] for g in got] == [CLASSES[i] for i in want.argmax(1)]
    text = subprocess.run([sys.executable, str(out / "predict.py"), str(images[0])], capture_output=True, text=True,
                          timeout=120, cwd=root).stdout
    assert text.startswith(f"{images[0]}: ") and text.count(" %") == 3


def test_predict_py_needs_only_onnxruntime_numpy_and_pillow(folder_bundle):
    _, out = folder_bundle
    tree = ast.parse((out / "predict.py").read_text())
    imported = {(n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
                for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in (n.names if isinstance(n, ast.Import) else [n])}
    assert imported <= {"__future__", "argparse", "json", "sys", "pathlib", "numpy", "PIL", "onnxruntime"}, imported
    bad = subprocess.run([sys.executable, str(out / "predict.py"), str(out / "report.json")], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "cannot read" in bad.stderr and "Traceback" not in bad.stderr


def test_a_model_without_the_recipe_reads_as_none(tmp_path, folder_bundle):
    import onnx

    _, out = folder_bundle
    model = onnx.load(str(out / "model.onnx"))
    assert METADATA_KEY in {p.key for p in model.metadata_props}
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "bare.onnx"))
    assert read_from_model(tmp_path / "bare.onnx") is None
