"""predict.py, the bundle's standalone classifier, on what a user may hand it (issue 47's sweep): every bad
image, model or recipe is one line on stderr and exit 2, and a 16-bit image is read at its true brightness.

A real bundle's predict.py (hwnas/finalize/bundle_predict.py, copied as finalize copies it) runs as a real
process on a small real ONNX model (global average pool -> linear, 3 classes) with a real preprocess.json;
the whole finalize pipeline's bundle is tests/test_preprocess.py's (slow)."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from hwnas.finalize.preprocess import METADATA_KEY, PREDICT_SCRIPT

RECIPE = {"input_name": "input", "input_shape": [1, 1, 8, 8], "image_mode": "L", "scale": 1 / 255,
          "mean": [0.5], "std": [0.25], "resize": {"size": [8, 8], "from": [8, 8], "interpolation": "bilinear",
                                                     "align_corners": False, "antialias": False},
          "output_name": "logits", "output": "logits (softmax not applied)", "classes": ["dark", "mid", "bright"],
          "data": {}, "format": "hwnas-preprocess", "version": 1}


def _model(path, metadata: bool = True) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.array([[-4.0, 0.0, 4.0]], np.float32), "w")
    b = numpy_helper.from_array(np.array([1.0, 2.0, 1.0], np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["input"], ["p"]), helper.make_node("Flatten", ["p"], ["f"]),
         helper.make_node("MatMul", ["f", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["logits"])],
        "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    if metadata:
        model.metadata_props.add(key=METADATA_KEY, value=json.dumps(RECIPE))
    onnx.save(model, str(path))


@pytest.fixture
def bundle(tmp_path):
    d = tmp_path / "dist"
    d.mkdir()
    _model(d / "model.onnx")
    (d / "preprocess.json").write_text(json.dumps(RECIPE))
    shutil.copyfile(PREDICT_SCRIPT, d / "predict.py")
    return d


def _png(path, array, mode=None):
    from PIL import Image

    Image.fromarray(array, mode) if mode else Image.fromarray(array)
    (Image.fromarray(array, mode) if mode else Image.fromarray(array)).save(path)
    return path


def _predict(bundle, *args):
    r = subprocess.run([sys.executable, str(bundle / "predict.py"), *map(str, args), "--json"], capture_output=True,
                       text=True, timeout=120)
    return r.returncode, r.stdout, r.stderr.strip()


def _refused(r, *words):
    code, out, err = r
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, (code, err)
    assert err.startswith("predict.py: ") and all(w in err for w in words), err
    assert not out, out


def test_a_good_image_is_classified(bundle, tmp_path):
    code, out, err = _predict(bundle, _png(tmp_path / "white.png", np.full((8, 8), 255, np.uint8)))
    assert code == 0 and json.loads(out)["class"] == "bright", err


def test_a_16_bit_png_is_read_at_its_brightness_not_clipped(bundle, tmp_path):
    grey8 = np.tile(np.arange(0, 256, 32, dtype=np.uint8), (8, 1))   # 0..224 across
    grey16 = grey8.astype(np.uint16) * 257                           # the same brightness in 16 bits
    a = _predict(bundle, _png(tmp_path / "g8.png", grey8))
    b = _predict(bundle, _png(tmp_path / "g16.png", grey16))
    assert a[0] == 0 and b[0] == 0, (a, b)
    np.testing.assert_allclose(json.loads(b[1])["logits"], json.loads(a[1])["logits"], atol=1e-4)


def test_a_1x1_image_and_a_cmyk_jpeg_are_read(bundle, tmp_path):
    from PIL import Image

    Image.new("CMYK", (20, 12), (0, 0, 0, 0)).save(tmp_path / "cmyk.jpg")
    assert _predict(bundle, _png(tmp_path / "one.png", np.full((1, 1), 7, np.uint8)))[0] == 0
    code, out, err = _predict(bundle, tmp_path / "cmyk.jpg")
    assert code == 0 and json.loads(out)["class"] == "bright", err  # no ink: white


def test_bad_images_are_one_line_exit_2(bundle, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    good = _png(tmp_path / "g.png", np.full((64, 64), 100, np.uint8)).read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(good[: len(good) // 2])
    _refused(_predict(bundle, text), "notes.png", "as an image")
    _refused(_predict(bundle, cut), "cut.png")
    _refused(_predict(bundle, tmp_path), "as an image")  # a directory


def test_a_damaged_recipe_is_one_line_exit_2(bundle, tmp_path):
    img = _png(tmp_path / "g.png", np.full((8, 8), 100, np.uint8))
    pre = bundle / "preprocess.json"
    pre.write_text('{"input_name": "input", ')
    _refused(_predict(bundle, img), "preprocess.json", "not valid JSON")
    pre.write_text(json.dumps({k: v for k, v in RECIPE.items() if k != "classes"}))
    _refused(_predict(bundle, img), "lacks ['classes']")
    pre.write_text(json.dumps({**RECIPE, "mean": [0.5, 0.5, 0.5]}))
    _refused(_predict(bundle, img), "mean and std")
    pre.write_text(json.dumps({**RECIPE, "classes": ["a", "b"]}))
    _refused(_predict(bundle, img), "3 outputs", "2 classes")
    pre.write_text(json.dumps({**RECIPE, "input_name": "image"}))
    _refused(_predict(bundle, img), "does not fit")


def test_a_model_without_metadata_or_not_onnx_is_one_line_exit_2(bundle, tmp_path):
    img = _png(tmp_path / "g.png", np.full((8, 8), 100, np.uint8))
    (bundle / "preprocess.json").unlink()
    assert _predict(bundle, img)[0] == 0  # the recipe in the model's metadata
    _model(bundle / "model.onnx", metadata=False)
    _refused(_predict(bundle, img), "no hwnas.preprocess metadata")
    (bundle / "model.onnx").write_bytes(b"not a model")
    _refused(_predict(bundle, img), "not a model ONNX Runtime can load")
