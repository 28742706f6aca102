"""Reading a finished run (hwnas.runs, beside the run store); finalize and report read runs through it."""
import pytest

from hwnas.finalize import FinalizeError
from hwnas.finalize import read_run as finalize_read_run
from hwnas.runs import RunError, read_run


def test_read_run_is_one_function_with_one_error(tmp_path):
    assert finalize_read_run is read_run  # `from hwnas.finalize import read_run` keeps working
    with pytest.raises(RunError, match="does not exist"):
        read_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FinalizeError, match="not a search run"):  # what finalize's callers catch
        read_run(tmp_path / "empty")
