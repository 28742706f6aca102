"""Import paths that are not plain files under hwnas/.

- In a source checkout that is not installed, ``hwnas.profilers`` is the repository's top-level ``profilers/``
  folder (an installed hwnas has it there already: pyproject's package-dir).
- Module paths of hwnas before its packages (0.1): ``hwnas.space`` is now ``hwnas.spaces.base``, and so on.
  Third-party plugins written against the old paths keep importing for one release: each old name is an alias of the
new module (the same objects, so ``isinstance`` and monkeypatching work), with a DeprecationWarning naming the new
path. Data files never held module paths, so LUTs, arch files, run stores and bundles need nothing from here."""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from pathlib import Path

MOVED = {
    "hwnas.errors": "hwnas.core.errors",
    "hwnas.jsonio": "hwnas.core.jsonio",
    "hwnas.registry": "hwnas.core.registry",
    "hwnas.metrics": "hwnas.core.metrics",
    "hwnas.space": "hwnas.spaces.base",
    "hwnas.blocks": "hwnas.spaces.blocks",
    "hwnas.cells": "hwnas.spaces.cells",
    "hwnas.lut": "hwnas.latency.lut",
    "hwnas.predict": "hwnas.latency.predict",
    "hwnas.calibrate": "hwnas.measuring.calibrate",
    "hwnas.profiling": "hwnas.measuring.profiling",
    "hwnas.isolate": "hwnas.measuring.isolate",
    "hwnas.measure": "hwnas.measuring.measure",
    "hwnas.drift": "hwnas.measuring.drift",
    "hwnas.fidelity": "hwnas.measuring.fidelity",
    "hwnas.pairing": "hwnas.measuring.pairing",
    "hwnas.device_bundle": "hwnas.measuring.bundle",
    "hwnas.modelfile": "hwnas.measuring.modelfile",
    "hwnas.store": "hwnas.search.store",
    "hwnas.runs": "hwnas.search.runs",
    "hwnas.report": "hwnas.finalize.report",
    "hwnas.evaluate.benchmark": "hwnas.bench.evaluators",
    "hwnas.evaluate.reference": "hwnas.bench.reference",
    "hwnas.search.quality": "hwnas.bench.search_quality",
    "hwnas.cli": "hwnas.app.cli",
    "hwnas.demo": "hwnas.app.demo",
}


PROFILERS = Path(__file__).resolve().parents[1] / "profilers"


class _SourceProfilers(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != "hwnas.profilers" or not (PROFILERS / "__init__.py").is_file():
            return None
        return importlib.util.spec_from_file_location(fullname, PROFILERS / "__init__.py",
                                                      submodule_search_locations=[str(PROFILERS)])


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        new = MOVED[module.__name__]
        warnings.warn(f"{module.__name__} is now {new}; the old path goes in the next release", DeprecationWarning,
                      stacklevel=2)
        # the import system returns what sys.modules holds after exec_module: the new module itself
        sys.modules[module.__name__] = importlib.import_module(new)


def install() -> None:
    """After the standard finders: an installed hwnas.profilers, or the package's own modules, always win."""
    for finder in (_SourceProfilers, _Alias):
        if not any(isinstance(f, finder) for f in sys.meta_path):
            sys.meta_path.append(finder())
