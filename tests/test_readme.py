"""The quick start's commands run as written (the cheap ones; expensive ones with small settings).

The guide docs/quickstart.md holds every step; the README's quick start is its short form, and every
command of it is one of the guide's word for word (checked below), so running the guide's commands runs
the README's too."""
import json
import re
import shlex

import pytest

from conftest import ROOT, run_cli


def read_commands(path) -> str:
    return re.sub(r"\\\n\s*", " ", path.read_text())  # join shell line continuations


README = read_commands(ROOT / "README.md")
GUIDE = read_commands(ROOT / "docs" / "quickstart.md")


def commands(text: str, prefix: str = "hwnas ") -> list[str]:
    cmds = re.findall(r"^\$? ?(hwnas [^\n#]+?)\s*(?:#.*)?$", text, flags=re.M)
    return [c for c in (" ".join(c.split()) for c in cmds) if c.startswith(prefix)]


def guide_commands(prefix: str) -> list[str]:
    """The guide's commands that begin with ``prefix`` (the README's quick start is a subset of them)."""
    return commands(GUIDE, prefix)


def test_the_readme_quick_start_is_the_guides_word_for_word():
    quick = commands(README.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0])
    assert len(quick) >= 6, quick
    assert [c for c in quick if c not in commands(GUIDE)] == []


def run_readme(cmd: str, cwd):
    args = shlex.split(cmd)[1:]
    args = [str(ROOT / a) if a.startswith("luts/") else a for a in args]
    return run_cli(*args, cwd=cwd)


def test_the_guide_lists_the_commands_it_documents():
    for prefix in ("hwnas profile --list", "hwnas sample", "hwnas predict", "hwnas measure", "hwnas search",
                   "hwnas supernet", "hwnas predictor", "hwnas finalize", "hwnas report"):
        assert guide_commands(prefix), prefix


def test_profile_list_as_in_readme(tmp_path):
    r = run_readme(guide_commands("hwnas profile --list")[0], tmp_path)
    assert r.returncode == 0 and "ort-cpu      available" in r.stdout


def test_sample_then_predict_as_in_readme(tmp_path):
    sample = guide_commands("hwnas sample")[0]
    assert run_readme(sample, tmp_path).returncode == 0
    assert (tmp_path / "arch.json").is_file()
    r = run_readme(guide_commands("hwnas predict")[0], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "predicted" in r.stdout and "ms" in r.stdout


@pytest.mark.slow
def test_search_as_in_readme_with_small_settings(tmp_path):
    cmd = guide_commands("hwnas search --lut luts/amd-epyc-2c_ort-cpu_mbv3.json")[0]
    cmd = small(cmd).replace("--out runs/", f"--out {tmp_path}/")
    r = run_readme(cmd, tmp_path)
    assert r.returncode in (0, 1), r.stderr  # 1 = nothing met the budget in so few evaluations
    assert "search done" in r.stdout


def small(cmd: str) -> str:
    """The README's command with toy settings: same flags, minutes become seconds."""
    for flag, value in (("--epochs", "1"), ("--population", "4"), ("--generations", "2"), ("--archs", "12")):
        cmd = re.sub(rf"{flag} \d+", f"{flag} {value}", cmd)
    return cmd


@pytest.mark.slow
def test_supernet_search_finalize_report_as_in_readme(tmp_path):
    """Steps 4-7 of the quick start, in order, in a fresh directory (relative runs/ and dist/ paths land there)."""
    for prefix, expect in (("hwnas supernet", "validation accuracy"), ("hwnas predictor", "held out: Kendall tau"),
                           ("hwnas search --lut luts/amd-epyc-2c_ort-cpu_demo.json", "search done"),
                           ("hwnas finalize", "measured median"), ("hwnas report", "report.md")):
        cmd = small(guide_commands(prefix)[0])
        r = run_readme(cmd, tmp_path)
        ok = (0, 1, 5) if prefix in ("hwnas search --lut luts/amd-epyc-2c_ort-cpu_demo.json", "hwnas finalize") else (0,)
        assert r.returncode in ok, f"{cmd}\n{r.stderr[-2000:]}"  # 1 = over the budget after 1 epoch / 8 archs
        assert expect in r.stdout, (cmd, r.stdout)
    bundle = next((tmp_path / "dist").iterdir())
    assert {"model.onnx", "model.ort", "model.int8.onnx", "report.json", "report.md"} <= {p.name for p in bundle.iterdir()}


@pytest.mark.slow
def test_refine_search_as_in_the_guide_then_finalize_takes_the_refined_pick(tmp_path):
    """The guide's multi-fidelity search (NASWOT, then the best under the budget trained and re-ranked), with
    toy settings, and finalize of its refined pick."""
    cmd = guide_commands("hwnas search --lut luts/amd-epyc-avx512-2c_ort-cpu_network-demo.json")[0]
    cmd = small(cmd).replace("--out runs/", f"--out {tmp_path}/").replace("--refine 6", "--refine 2 --refine-epochs 1")
    cmd += " --population 4 --generations 2"  # the guide's run with toy settings
    r = run_readme(cmd, tmp_path)
    assert r.returncode in (0, 1), r.stderr
    assert "refined pick:" in r.stdout
    run_dir = tmp_path / "net-0.13ms"
    pick = json.loads((run_dir / "refine.json").read_text())["pick"]
    f = run_cli("finalize", str(run_dir), "--out", str(tmp_path / "dist"), "--processes", "1", cwd=tmp_path)
    assert f.returncode in (0, 1, 5), f.stderr[-2000:]
    assert json.loads((tmp_path / "dist" / "report.json").read_text())["arch_id"] == pick
