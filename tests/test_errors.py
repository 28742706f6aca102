"""One error root: every error hwnas raises for the user derives from ``HwnasError`` and carries its exit code."""
from __future__ import annotations

import ast
import importlib

from conftest import ROOT

from hwnas.core.errors import EXIT_FAIL, EXIT_INPUT, EXIT_UNAVAILABLE, CheckFailed, HwnasError, InputError

# internal signals, each caught where it is raised and turned into an InputError with the file's name
NOT_FOR_THE_USER = {"hwnas.core.jsonio.NonFiniteError", "hwnas.core.jsonio.DuplicateKeyError",
                    # the bundle's predict.py runs where hwnas is not installed: its one error cannot derive from
                    # hwnas's root (it prints one line and exits 2 itself: tests/test_bundle_predict.py)
                    "hwnas.finalize.bundle_predict.Refused"}


def _exception_classes() -> list[type]:
    found = []
    for base, pkg in ((ROOT / "hwnas", "hwnas"), (ROOT / "profilers", "hwnas.profilers")):
        for path in base.rglob("*.py"):
            tree = ast.parse(path.read_text())
            names = [n.name for n in tree.body if isinstance(n, ast.ClassDef)
                     and any(isinstance(b, ast.Name) and b.id.endswith(("Error", "Failed", "Unavailable", "Mismatch",
                                                                         "TooLarge", "Exception"))
                             for b in n.bases)]
            if names:
                parts = [x for x in path.relative_to(base).with_suffix("").parts if x != "__init__"]
                module = importlib.import_module(".".join([pkg, *parts]))
                found += [getattr(module, n) for n in names]
    return found


def test_every_hwnas_error_is_under_the_one_root():
    classes = _exception_classes()
    assert len(classes) > 20
    stray = [f"{c.__module__}.{c.__qualname__}" for c in classes if not issubclass(c, HwnasError)]
    assert sorted(stray) == sorted(NOT_FOR_THE_USER)


def test_each_kind_carries_its_exit_code():
    from hwnas.app.args import CLIError
    from hwnas.profilers import ProfilerConfigError, ProfilerUnavailable, ProviderFallbackError

    assert InputError.exit_code == EXIT_INPUT and CheckFailed.exit_code == EXIT_FAIL
    assert ProfilerConfigError.exit_code == EXIT_INPUT
    assert ProfilerUnavailable.exit_code == ProviderFallbackError.exit_code == EXIT_UNAVAILABLE
    assert CLIError("x").exit_code == EXIT_INPUT and CLIError("x", code=EXIT_FAIL).exit_code == EXIT_FAIL
    assert issubclass(InputError, ValueError) and issubclass(ProfilerUnavailable, RuntimeError)  # as before
