"""Every known bad input gets exit 2 and one line naming what was wrong (issue 13's list, and more).

The cases live in tools/bad_inputs_table.py, which also writes docs/bad-inputs.md from real CLI runs.
Here each runs through ``hwnas.app.cli.main`` in this process (fast); a few also run as a real subprocess.
"""
import importlib.util

import pytest

from conftest import ROOT, run_cli
from hwnas.app.cli import main

_spec = importlib.util.spec_from_file_location("bad_inputs_table", ROOT / "tools" / "bad_inputs_table.py")
table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(table)


@pytest.mark.parametrize("what, argv_of", table.CASES, ids=[c[0] for c in table.CASES])
def test_bad_input_is_one_line_and_exit_2(what, argv_of, tmp_path, capsys):
    try:
        code = main(argv_of(tmp_path))
    except SystemExit as e:  # argparse refuses a flag's value
        code = e.code
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip() and not ln.startswith(("note:", "WARNING"))]
    assert code == 2, (what, err)
    assert err and "Traceback" not in "\n".join(err) and "internal error" not in err[-1], err
    assert len(err) == 1 and err[0].startswith("hwnas ") and ": error: " in err[0], err


@pytest.mark.parametrize("index", [0, 9, 21])
def test_bad_input_through_the_real_command(index, tmp_path):
    what, argv_of = table.CASES[index]
    r = run_cli(*argv_of(tmp_path))
    assert r.returncode == 2 and "Traceback" not in r.stderr, (what, r.stderr)


@pytest.mark.parametrize("what, argv_of", table.AGENT_CASES, ids=[c[0] for c in table.AGENT_CASES])
def test_bad_agent_option_is_one_line_naming_it_and_exit_2(what, argv_of):
    """hwnas-agent serve's start-up options (issue 47): a real process each, bounded in time and memory."""
    code, msg = table.run_agent_case(argv_of)  # all of stderr's lines
    flag = what.split()[2]
    assert code == 2 and msg.startswith(f"hwnas-agent serve: error: argument {flag}: "), (what, code, msg)
    assert "\n" not in msg and "Traceback" not in msg and msg.endswith("(see `hwnas-agent serve --help`)"), msg
