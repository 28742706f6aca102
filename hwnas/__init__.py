"""hwnas: hardware-aware neural architecture search.

Profile your device into a latency lookup table, search a MobileNetV3-style
space under your latency budget, and ship an ONNX model whose latency was
measured, not guessed.
"""
__version__ = "0.1.0"

# The device plugins are the repository's top-level profilers/ folder, installed as hwnas.profilers, and the device
# agent's package agent/hwnas_agent installs beside hwnas (pyproject's package-dir). Run from a source checkout
# without installing, this finds them there.
from pathlib import Path as _Path

_root = _Path(__file__).resolve().parents[1]
if (_root / "agent" / "hwnas_agent" / "__init__.py").is_file():
    import importlib.util as _util
    import sys as _sys

    if _util.find_spec("hwnas_agent") is None:
        _sys.path.append(str(_root / "agent"))
    del _util, _sys
del _Path, _root

from hwnas import _imports  # noqa: E402 - hwnas.profilers in a source checkout

_imports.install()
