"""Progress for a terminal and for a log file (issue 44 item 7): tqdm on a TTY, a few plain lines elsewhere,
nothing with --quiet. The CLI runs below write to pipes, as `> log.txt 2>&1` does."""
import io
from pathlib import Path

from conftest import run_cli

from hwnas.core.progress import Lines

DEMO = Path(__file__).resolve().parents[1] / "luts" / "amd-epyc-2c_ort-cpu_demo.json"


def test_lines_say_a_tenth_of_the_way_at_a_time_and_the_end():
    out = io.StringIO()
    bar = Lines(total=100, desc="profiling ort-cpu", unit="block", file=out)
    for _ in range(100):
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 11  # started, then 10 %, 20 % ... 100 %
    assert lines[0] == "profiling ort-cpu: started (100 block)"
    assert lines[-1].startswith("profiling ort-cpu: 100/100 block (100 %), ")


def test_lines_every_unit_with_the_postfix_and_a_stop_before_the_end():
    out = io.StringIO()
    bar = Lines(total=5, desc="search nsga2", unit="gen", every=1, file=out)
    bar.set_postfix(best="0.91", hv="0.42")
    bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert lines[1].startswith("search nsga2: 1/5 gen (20 %), ") and lines[1].endswith("best 0.91, hv 0.42")
    assert lines[2].startswith("search nsga2: stopped at 1/5 gen")


def test_a_search_into_a_log_file_writes_a_line_per_generation_and_quiet_writes_none(tmp_path):
    r = run_cli("search", "--lut", str(DEMO), "--evaluator", "proxy:synflow", "--population", "6", "--generations",
                "3", "--out", str(tmp_path / "r"))
    assert r.returncode in (0, 1), r.stderr
    assert "\r" not in r.stderr + r.stdout
    gens = [line for line in r.stderr.splitlines() if line.startswith("search nsga2: ") and " gen (" in line]
    assert [g.split(",")[0] for g in gens] == [f"search nsga2: {i}/3 gen ({round(100 * i / 3)} %)" for i in (1, 2, 3)]
    assert all("best " in g and "hv " in g for g in gens)
    q = run_cli("search", "--lut", str(DEMO), "--evaluator", "proxy:synflow", "--population", "6", "--generations",
                "3", "--out", str(tmp_path / "q"), "--quiet")
    assert q.returncode == r.returncode and "search nsga2" not in q.stderr and "search done" in q.stdout


def test_supernet_training_into_a_log_file_says_each_epochs_accuracy(tmp_path, tiny_data):
    r = run_cli("supernet", "--space", "demo", "--data", tiny_data, "--epochs", "2", "--data-limit", "20",
                "--compute", "cpu", "--out", str(tmp_path / "sn.pt"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "\r" not in r.stderr + r.stdout
    epochs = [line for line in r.stderr.splitlines() if line.startswith("training supernet: epoch ")]
    assert len(epochs) == 2 and "validation accuracy largest" in epochs[1] and epochs[1].endswith("%")
