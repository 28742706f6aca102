"""Issue 47's sweep of this turn's surfaces: the cases whose fault the one-line/exit-2 rows of
tests/test_bad_inputs.py cannot see (a file left behind, a warning on stderr, a message that names the wrong
thing, a recursion only a real process shows). The inputs are tools/bad_inputs_table.py's, so each is also a
row of docs/bad-inputs.md."""
import importlib.util

import pytest

from conftest import ROOT, cli_here, run_cli

_spec = importlib.util.spec_from_file_location("bad_inputs_table", ROOT / "tools" / "bad_inputs_table.py")
table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(table)
CASES = dict(table.CASES)


def _one_line(r):
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, (r.returncode, r.stderr)
    return lines[0]


@pytest.mark.slow  # a real process (~10 s on a busy 2-core host): the recursion showed there
def test_a_mixed_space_naming_its_own_file_is_refused_not_endless_recursion(tmp_path):
    """It recursed until Python's limit: exit 4 (an internal error) with a traceback file, in a real process."""
    line = _one_line(run_cli(*CASES["mixed space whose cell names its own file"](tmp_path)))
    assert "field 'cell'" in line and "names itself" in line, line


@pytest.mark.parametrize("what", ["profile --measurements a row of 1e308 ms",
                                  "profile --measurements every row 9e5 ms (a fit past the LUT's bounds)"])
def test_measurements_past_the_luts_bounds_write_nothing_and_say_so_once(what, tmp_path):
    """1e308 ms: numpy overflow warnings on stderr, then a t.json written that its own load refused ('the file
    was edited or is corrupt'); 9e5 ms: the same file left behind. Now: refused before anything is written."""
    line = _one_line(cli_here(*CASES[what](tmp_path)))
    assert not (tmp_path / "t.json").exists(), "a LUT was left behind"
    assert "edited or is corrupt" not in line and ("ms" in line), line


def test_a_genotype_of_another_node_count_names_the_node_count(tmp_path):
    """It said 'normal_concat must be range(2, 5)': true, but changing the concat cannot make 4 nodes fit 3."""
    line = _one_line(cli_here(*CASES["DARTS's 4-node genotype on darts-demo (3 nodes)"](tmp_path)))
    assert "4 nodes" in line and "3 nodes" in line and "concat" not in line, line


def test_suggest_keeps_a_filled_in_list_and_force_replaces_it(tmp_path):
    argv = CASES["profile --suggest --out an existing (filled-in) list"](tmp_path)
    _one_line(cli_here(*argv))
    assert (tmp_path / "list.csv").read_text() == "arch,ms\nmine,1.0\n"
    r = cli_here(*argv, "--force")
    assert r.returncode == 0 and (tmp_path / "list.csv").read_text().count("\n") == 4, r.stderr
