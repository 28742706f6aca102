"""Import paths that are not plain files under hwnas/.

In a source checkout that is not installed, ``hwnas.profilers`` is the repository's top-level ``profilers/``
folder (an installed hwnas has it there already: pyproject's package-dir)."""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path

PROFILERS = Path(__file__).resolve().parents[1] / "profilers"


class _SourceProfilers(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != "hwnas.profilers" or not (PROFILERS / "__init__.py").is_file():
            return None
        return importlib.util.spec_from_file_location(fullname, PROFILERS / "__init__.py",
                                                      submodule_search_locations=[str(PROFILERS)])


def install() -> None:
    """After the standard finders: an installed hwnas.profilers always wins."""
    if not any(isinstance(f, _SourceProfilers) for f in sys.meta_path):
        sys.meta_path.append(_SourceProfilers())
