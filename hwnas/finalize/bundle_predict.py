#!/usr/bin/env python3
"""Classify image files with this bundle's model: the preprocessing it was trained with, applied for you.

    python predict.py IMAGE [IMAGE ...] [--model model.onnx] [--top 3] [--json]

Needs onnxruntime, numpy and Pillow only (pip install onnxruntime numpy pillow); no hwnas, no torch. The recipe
(scale, per-channel mean/std, bilinear resize, class names) is read from preprocess.json beside this script, or
from the model's own metadata (key hwnas.preprocess) when that file is not there. Written by hwnas finalize.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def load_recipe(model: Path, session) -> dict:
    """preprocess.json beside the model, else the metadata of the model's (open) ONNX Runtime ``session``."""
    beside = model.parent / "preprocess.json"
    if beside.is_file():
        return json.loads(beside.read_text())
    text = session.get_modelmeta().custom_metadata_map.get("hwnas.preprocess")
    if text is None:
        raise SystemExit(f"predict.py: {model} holds no hwnas.preprocess metadata and there is no preprocess.json "
                         f"beside it; use the bundle hwnas finalize wrote")
    return json.loads(text)


def preprocess(image_path: Path, recipe: dict) -> np.ndarray:
    """An image file -> the model's input (1 x C x H x W float32), as hwnas trained it: to 0..1, normalised per
    channel, then resized bilinearly (antialiased when shrinking; done on float values, so nothing is rounded)."""
    from PIL import Image

    with Image.open(image_path) as im:
        im = im.convert(recipe["image_mode"])
        x = np.asarray(im, np.float32)
    x = x[..., None] if x.ndim == 2 else x  # H x W x C
    x = x * np.float32(recipe["scale"])
    x = (x - np.asarray(recipe["mean"], np.float32)) / np.asarray(recipe["std"], np.float32)
    h, w = recipe["resize"]["size"]
    if x.shape[:2] != (h, w):
        channels = [np.asarray(Image.fromarray(np.ascontiguousarray(x[..., c]), mode="F")
                               .resize((w, h), Image.Resampling.BILINEAR), np.float32) for c in range(x.shape[-1])]
        x = np.stack(channels, axis=-1)
    x = x.transpose(2, 0, 1)[None]  # 1 x C x H x W
    want = recipe["input_shape"][1]
    if x.shape[1] == 1 and want == 3:
        x = np.repeat(x, 3, axis=1)
    return np.ascontiguousarray(x, np.float32)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="+", type=Path, help="image files (PNG, JPEG, ...)")
    ap.add_argument("--model", type=Path, default=HERE / "model.onnx", help="model file [model.onnx beside this]")
    ap.add_argument("--top", type=int, default=3, help="classes to print per image [3]")
    ap.add_argument("--json", action="store_true", help="print one JSON object per image (logits included)")
    a = ap.parse_args(argv)
    import onnxruntime as ort

    if not a.model.is_file():
        print(f"predict.py: model {a.model} not found; give --model", file=sys.stderr)
        return 2
    sess = ort.InferenceSession(str(a.model), providers=["CPUExecutionProvider"])
    recipe = load_recipe(a.model, sess)
    classes = recipe["classes"]
    for path in a.images:
        try:
            x = preprocess(path, recipe)
        except OSError as e:
            print(f"predict.py: cannot read {path} as an image ({e})", file=sys.stderr)
            return 2
        logits = sess.run([recipe["output_name"]], {recipe["input_name"]: x})[0][0].astype(np.float64)
        p = np.exp(logits - logits.max())
        p /= p.sum()
        order = np.argsort(-p)[:max(1, a.top)]
        if a.json:
            print(json.dumps({"image": str(path), "class": classes[order[0]], "index": int(order[0]),
                              "probability": float(p[order[0]]), "logits": logits.tolist()}))
        else:
            shown = ", ".join(f"{classes[i]} {100 * p[i]:.1f} %" for i in order)
            print(f"{path}: {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
