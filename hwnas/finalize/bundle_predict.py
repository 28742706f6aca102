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


REQUIRED = ("input_name", "input_shape", "image_mode", "scale", "mean", "std", "resize", "output_name", "classes")


class Refused(Exception):
    """What the user gave (an image, the model, its recipe) cannot be used: one line on stderr, exit 2."""


def load_recipe(model: Path, session) -> dict:
    """preprocess.json beside the model, else the metadata of the model's (open) ONNX Runtime ``session``."""
    beside = model.parent / "preprocess.json"
    if beside.is_file():
        where, fix = str(beside), "copy it from the bundle again (the model's metadata holds the same recipe: move " \
                                  "the damaged file away to use that)"
        try:
            text = beside.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise Refused(f"{where} cannot be read ({e}); {fix}") from None
    else:
        text = session.get_modelmeta().custom_metadata_map.get("hwnas.preprocess")
        if text is None:
            raise Refused(f"{model} holds no hwnas.preprocess metadata and there is no preprocess.json beside it; "
                          f"use the bundle hwnas finalize wrote")
        where, fix = f"{model}'s hwnas.preprocess metadata", "use the model file of the bundle hwnas finalize wrote"
    try:
        recipe = json.loads(text)
    except ValueError as e:
        raise Refused(f"{where} is not valid JSON ({e}); {fix}") from None
    check_recipe(recipe, where, fix)
    return recipe


def check_recipe(r, where: str, fix: str) -> None:
    """The recipe's fields have the types and sizes preprocess() and the output need, or one Refused line."""
    def bad(what: str) -> Refused:
        return Refused(f"{where}: {what}; {fix}")

    def numbers(v, n=None, positive=False) -> bool:
        return (isinstance(v, list) and (n is None or len(v) == n) and len(v) > 0
                and all(isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x)
                        and (x > 0 or not positive) for x in v))

    if not isinstance(r, dict):
        raise bad(f"expected a JSON object (the preprocessing recipe), got {type(r).__name__}")
    missing = [k for k in REQUIRED if k not in r]
    if missing:
        raise bad(f"lacks {missing}")
    if r["image_mode"] not in ("L", "RGB"):
        raise bad(f"image_mode must be 'L' or 'RGB', got {r['image_mode']!r}")
    channels = 1 if r["image_mode"] == "L" else 3
    if not numbers(r["input_shape"], 4, positive=True) or r["input_shape"][1] not in (channels, 3):
        raise bad(f"input_shape must be [1, C, H, W] with C {channels} or 3, got {r['input_shape']!r}")
    if not numbers([r["scale"]], positive=True):
        raise bad(f"scale must be a number > 0, got {r['scale']!r}")
    if not numbers(r["mean"], channels) or not numbers(r["std"], channels, positive=True):
        raise bad(f"mean and std must list {channels} number(s) (std > 0), one per channel of a "
                  f"{r['image_mode']} image, got {r['mean']!r} and {r['std']!r}")
    size = r["resize"].get("size") if isinstance(r["resize"], dict) else None
    if not numbers(size, 2, positive=True) or any(v != int(v) or v > 65536 for v in size):
        raise bad(f"resize.size must be [H, W] (whole numbers), got {size!r}")
    if not isinstance(r["classes"], list) or not r["classes"] or not all(isinstance(c, str) for c in r["classes"]):
        raise bad(f"classes must list the class names, got {str(r['classes'])[:60]}")


def read_image(image_path: Path, mode: str) -> np.ndarray:
    """The image's pixels as float32 H x W (x C) on the 0..255 scale in ``mode`` ('L' or 'RGB'). A 16-bit image
    is brought to that scale (/257), not clipped at 255 as Pillow's convert() would."""
    from PIL import Image

    try:
        with Image.open(image_path) as im:
            if im.mode.startswith("I;16") or im.mode in ("I", "F"):
                x = np.asarray(im, np.float32)
                if im.mode == "F" or x.min() < 0 or x.max() > 65535:
                    raise Refused(f"{image_path}: a {im.mode} image with values {x.min():g}..{x.max():g}; give an 8- "
                                  f"or 16-bit image (PNG, JPEG, ...)")
                x = x / np.float32(257)  # 65535 -> 255
                return np.repeat(x[..., None], 3, axis=-1) if mode == "RGB" else x
            return np.asarray(im.convert(mode), np.float32)
    except Image.DecompressionBombError as e:
        raise Refused(f"{image_path}: {e}") from None
    except (OSError, ValueError, SyntaxError) as e:  # not an image, truncated, a mode Pillow cannot convert
        raise Refused(f"cannot read {image_path} as an image ({e})") from None


def preprocess(image_path: Path, recipe: dict) -> np.ndarray:
    """An image file -> the model's input (1 x C x H x W float32), as hwnas trained it: to 0..1, normalised per
    channel, then resized bilinearly (antialiased when shrinking; done on float values, so nothing is rounded)."""
    from PIL import Image

    x = read_image(image_path, recipe["image_mode"])
    x = x[..., None] if x.ndim == 2 else x  # H x W x C
    x = x * np.float32(recipe["scale"])
    x = (x - np.asarray(recipe["mean"], np.float32)) / np.asarray(recipe["std"], np.float32)
    h, w = (int(v) for v in recipe["resize"]["size"])
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
    try:
        return classify(a)
    except Refused as e:
        print(f"predict.py: error: {e}", file=sys.stderr)
        return 2


def classify(a: argparse.Namespace) -> int:
    import onnxruntime as ort

    if not a.model.is_file():
        raise Refused(f"model {a.model} not found; give --model")
    try:
        sess = ort.InferenceSession(str(a.model), providers=["CPUExecutionProvider"])
    except Exception as e:  # ONNX Runtime's own errors: truncated, not ONNX, an op it lacks
        raise Refused(f"{a.model} is not a model ONNX Runtime can load ({str(e).splitlines()[0][:200]}); give the "
                      f"model.onnx (or .ort) of the bundle") from None
    recipe = load_recipe(a.model, sess)
    classes = recipe["classes"]
    for path in a.images:
        x = preprocess(path, recipe)
        try:
            logits = sess.run([recipe["output_name"]], {recipe["input_name"]: x})[0][0].astype(np.float64)
        except Exception as e:  # names or shapes of the recipe that are not the model's
            raise Refused(f"the recipe does not fit {a.model} ({str(e).splitlines()[0][:200]}); use the "
                          f"preprocess.json of the bundle the model came from") from None
        if logits.shape != (len(classes),):
            raise Refused(f"{a.model} gives {logits.size} outputs but the recipe names {len(classes)} classes; use "
                          f"the preprocess.json of the bundle the model came from")
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
