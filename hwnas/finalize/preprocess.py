"""How to feed the shipped model: the preprocessing and the class names, written where a team finds them.

The networks were trained on images scaled to 0..1, normalised with the training split's per-channel mean and
std, and resized bilinearly to the arch's resolution (:meth:`hwnas.evaluate.data.Splits.inputs`). A model file
without that recipe cannot be used without reading hwnas's source, so finalize records it three ways: in
``preprocess.json`` beside the models, in every ONNX model's metadata (``hwnas.preprocess``, which ``.ort`` files
converted from it carry too), and as ``predict.py``, a script that applies it (onnxruntime, numpy and Pillow
only).
"""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hwnas.core import jsonio
from hwnas.core.files import atomic_write_text
from hwnas.evaluate.data import Splits
from hwnas.spaces.base import SpaceArch

FORMAT = "hwnas-preprocess"
METADATA_KEY = "hwnas.preprocess"  # the ONNX model's metadata_props key holding the same JSON
PREDICT_SCRIPT = Path(__file__).with_name("bundle_predict.py")  # copied into the bundle as predict.py


@dataclass(frozen=True)
class Preprocessing:
    """Everything between an image file and the model's input tensor, and what the output means."""

    input_name: str
    input_shape: tuple[int, ...]  # N x C x H x W, float32
    image_mode: str  # "L" (grey) or "RGB": how to read an image file (Pillow's mode names)
    scale: float  # pixel values (0..255) are multiplied by this first
    mean: tuple[float, ...]  # per image channel, after scaling (from the training split)
    std: tuple[float, ...]
    resize: dict[str, Any]  # {"size": [H, W], "interpolation": "bilinear", "antialias": ..., "align_corners": False}
    output_name: str
    output: str  # what the output is: logits, softmax not applied
    classes: tuple[str, ...]  # output index -> class name
    data: dict[str, Any]  # the data set the numbers come from (Splits.config())
    format: str = FORMAT
    version: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return jsonio.dumps(self.to_dict(), indent=1)


def preprocessing_for(splits: Splits, arch: SpaceArch, input_name: str = "input",
                      output_name: str = "logits") -> Preprocessing:
    """The recipe :meth:`Splits.inputs` applies for ``arch``, as data. A grey data set feeding a 3-channel space
    is read as grey and repeated over the channels (the mean and std are the grey channel's)."""
    channels = arch.space.in_channels
    image_channels = int(splits.train.x.shape[-1])
    r = int(arch.resolution)
    h, w = (int(n) for n in splits.train.x.shape[1:3])
    return Preprocessing(
        input_name=input_name, input_shape=(1, channels, r, r),
        image_mode="L" if image_channels == 1 else "RGB", scale=1 / 255,
        mean=tuple(float(v) for v in splits.mean), std=tuple(float(v) for v in splits.std),
        resize={"size": [r, r], "from": [h, w], "interpolation": "bilinear", "align_corners": False,
                "antialias": r < max(h, w), "grey_to_channels": image_channels == 1 and channels == 3},
        output_name=output_name, output="logits (softmax not applied)",
        classes=tuple(str(c) for c in splits.train.classes), data=splits.config())


def embed_in_onnx(path: Path, pre: Preprocessing) -> None:
    """Write the recipe into the ONNX model's metadata (``metadata_props``): it travels with the file, and
    ``onnxruntime.InferenceSession(...).get_modelmeta().custom_metadata_map`` reads it back."""
    import onnx

    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    props[METADATA_KEY] = json.dumps(pre.to_dict(), separators=(",", ":"))
    props["hwnas.classes"] = json.dumps(list(pre.classes))
    del model.metadata_props[:]
    for key, value in sorted(props.items()):
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def read_from_model(path: Path) -> dict[str, Any] | None:
    """The recipe stored in an ONNX or ``.ort`` model, as ONNX Runtime reads it (None when it holds none)."""
    from hwnas.finalize.onnx_export import ort_session

    meta = ort_session(path).get_modelmeta().custom_metadata_map
    return json.loads(meta[METADATA_KEY]) if METADATA_KEY in meta else None


def write_bundle_preprocessing(stage: Path, pre: Preprocessing) -> list[str]:
    """``preprocess.json`` and ``predict.py`` into the bundle being built; the names written."""
    atomic_write_text(stage / "preprocess.json", pre.to_json() + "\n")
    shutil.copyfile(PREDICT_SCRIPT, stage / "predict.py")
    return ["preprocess.json", "predict.py"]
