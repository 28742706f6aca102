"""The README's quick-start commands run as written (the cheap ones; expensive ones with small settings)."""
import re
import shlex

import pytest

from conftest import ROOT, run_cli

README = re.sub(r"\\\n\s*", " ", (ROOT / "README.md").read_text())  # join shell line continuations


def readme_commands(prefix: str) -> list[str]:
    cmds = re.findall(r"^\$? ?(hwnas [^\n#]+?)\s*(?:#.*)?$", README, flags=re.M)
    return [c for c in cmds if c.startswith(prefix)]


def run_readme(cmd: str, cwd):
    args = shlex.split(cmd)[1:]
    args = [str(ROOT / a) if a.startswith("luts/") else a for a in args]
    return run_cli(*args, cwd=cwd)


def test_readme_lists_the_commands_it_documents():
    for prefix in ("hwnas profile --list", "hwnas sample", "hwnas predict", "hwnas measure", "hwnas search"):
        assert readme_commands(prefix), prefix


def test_profile_list_as_in_readme(tmp_path):
    r = run_readme(readme_commands("hwnas profile --list")[0], tmp_path)
    assert r.returncode == 0 and "ort-cpu      available" in r.stdout


def test_sample_then_predict_as_in_readme(tmp_path):
    sample = readme_commands("hwnas sample")[0]
    assert run_readme(sample, tmp_path).returncode == 0
    assert (tmp_path / "arch.json").is_file()
    r = run_readme(readme_commands("hwnas predict")[0], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "predicted" in r.stdout and "ms" in r.stdout


@pytest.mark.slow
def test_search_as_in_readme_with_small_settings(tmp_path):
    cmd = readme_commands("hwnas search")[0]
    cmd = re.sub(r"--population \d+", "--population 4", re.sub(r"--generations \d+", "--generations 2", cmd))
    cmd = cmd.replace("--out runs/", f"--out {tmp_path}/")
    r = run_readme(cmd, tmp_path)
    assert r.returncode in (0, 1), r.stderr  # 1 = nothing met the budget in so few evaluations
    assert "search done" in r.stdout
