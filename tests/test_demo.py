"""`hwnas demo` (hwnas/app/demo.py): the whole pipeline, at toy settings, and its resume."""
import json
from pathlib import Path

import pytest

from conftest import run_cli
from hwnas.app.demo import MARKER, DemoError, matching_lut, prepare_out


def test_matching_lut_does_not_pin_this_process():
    """Looking up the shipped LUT must not leave this process pinned (it starved supernet training 40x)."""
    import os

    before = os.sched_getaffinity(0)
    path, notes = matching_lut("ort-cpu")
    assert os.sched_getaffinity(0) == before
    assert path is not None or notes  # either a match, or the reasons there is none


def _shipped(name: str) -> dict:
    from hwnas.latency.lut import LUT

    return LUT.load(Path(__file__).resolve().parents[1] / "luts" / name).fingerprint


def test_the_donor_is_the_shipped_device_closest_to_this_one(monkeypatch):
    """Three shipped ort-cpu demo LUTs (AVX2 EPYC, AVX-512 EPYC, AVX-512/AMX Xeon): each machine transfers from
    the closest *other* device (most CPU flags in common), whatever the files' names; an AVX2-only laptop from
    the AVX2 EPYC; another machine kind ranks below every x86 donor."""
    import hwnas.app.demo as demo
    from hwnas.measuring.transfer import donor_closeness

    avx2, avx512 = _shipped("amd-epyc-2c_ort-cpu_demo.json"), _shipped("amd-epyc-avx512-2c_ort-cpu_demo.json")
    xeon = _shipped("intel-xeon-avx512-2c_ort-cpu_demo.json")
    laptop = {**avx2, "cpu_model": "Intel(R) Core(TM) i7", "cpu_flags": "avx2 fma"}
    assert donor_closeness(avx512, xeon) > donor_closeness(avx2, xeon)
    assert donor_closeness(avx2, laptop) > max(donor_closeness(avx512, laptop), donor_closeness(xeon, laptop))
    arm = {**avx512, "machine": "aarch64", "cpu_flags": "asimd"}
    assert donor_closeness(arm, xeon) < min(donor_closeness(avx2, xeon), donor_closeness(avx512, xeon))

    # HWNAS_IGNORE_SHIPPED_LUTS=match: a machine a shipped LUT was built on acts as a stranger; its own LUT is
    # no donor (without the variable the demo would use that LUT and ask for no donor at all)
    monkeypatch.setenv(demo.IGNORE_SHIPPED_ENV, "match")
    for here, donor in ((xeon, "amd-epyc-avx512-2c_ort-cpu_demo.json"),
                        (avx512, "intel-xeon-avx512-2c_ort-cpu_demo.json"),
                        (laptop, "amd-epyc-2c_ort-cpu_demo.json")):
        monkeypatch.setattr(demo, "this_fingerprint", lambda name, here=here: here)
        assert demo.donor_lut("ort-cpu", "demo").name == donor, here["cpu_model"]


def test_force_deletes_only_a_directory_the_demo_made(tmp_path):
    out = tmp_path / "demo"
    prepare_out(out, force=False)  # a new directory: the demo's from now on
    assert (out / MARKER).is_file()
    (out / "supernet.pt").write_bytes(b"an earlier demo's checkpoint")
    prepare_out(out, force=False)  # run again: resumes, keeps what is there
    assert (out / "supernet.pt").is_file()
    prepare_out(out, force=True)  # start over
    assert sorted(p.name for p in out.iterdir()) == [MARKER]


@pytest.mark.parametrize("force", [True, False], ids=["force", "no-force"])
def test_a_directory_the_demo_did_not_make_is_refused(tmp_path, force):
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    with pytest.raises(DemoError, match=f"did not make \\(no {MARKER} file in it\\).*choose another --out"):
        prepare_out(home, force=force)
    assert [p.name for p in home.iterdir()] == ["thesis.tex"]


def test_demo_force_on_a_foreign_directory_exits_2(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    r = run_cli("demo", "--out", str(tmp_path), "--force")
    assert r.returncode == 2 and "--force deletes only a directory `hwnas demo` made" in r.stderr, r.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


@pytest.mark.slow
def test_demo_without_a_matching_lut_runs_end_to_end_unpinned_and_resumes(newcomer_demo, monkeypatch):
    """What a newcomer whose CPU is not ours meets: no shipped LUT, so one is built here, then training.

    The first run (the session fixture) is in this process, so what the LUT build leaves behind (pinning,
    thread count) is seen.
    """
    from conftest import NEWCOMER_ARGS

    out, rc, stdout = newcomer_demo["out"], newcomer_demo["rc"], newcomer_demo["stdout"]
    assert newcomer_demo["after"] == newcomer_demo["before"]
    assert rc in (0, 1, 5), stdout[-3000:]  # 1 FAIL (over the budget), 5 UNCERTAIN (too noisy): still a full bundle
    assert "shipped LUTs ignored" in stdout and f"building {out}/lut_ort-cpu_demo.json" in stdout
    for step in ("[1/4] LUT", "[2/4] supernet", "[3/4] search", "[4/4] finalize"):
        assert step in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] == {0: "PASS", 1: "FAIL", 5: "UNCERTAIN"}[rc]
    assert summary["front_size"] >= 1 and summary["measured_ms"] > 0 and summary["peak_rss_mib"] > 0
    for f in ("model.onnx", "model.ort", "report.json", "report.md"):
        assert (out / "final" / f).is_file(), f
    lat = json.loads((out / "final" / "report.json").read_text())["latency"]
    assert lat["drift"]["source"] == "reference" and "corrected for drift" in stdout  # the LUT built here has one
    assert lat["prediction_error_drift_corrected_pct"] is not None
    assert (out / MARKER).is_file()
    # run again, as a user would: nothing is built, trained or searched twice, and the pick is the same; the
    # LUT begun with --quick stays quick (one timing policy per LUT), so the budget and the search stand
    def measured() -> tuple:
        d = json.loads((out / "lut_ort-cpu_demo.json").read_text())
        return d["entries"], d["calibration"], d["reference"]

    lut_before = measured()
    monkeypatch.setenv("HWNAS_IGNORE_SHIPPED_LUTS", "1")  # as in the first run
    r2 = run_cli("demo", "--out", str(out), *NEWCOMER_ARGS, timeout=900)
    assert r2.returncode in (0, 1, 5), (r2.stdout[-2000:], r2.stderr[-2000:])  # verdict measured afresh: may flip
    assert "resuming (or reusing)" in r2.stdout and "already trained" in r2.stdout
    assert "was begun with --quick: it goes on that way" in r2.stdout
    assert measured() == lut_before  # complete: nothing measured again
    assert json.loads((out / "summary.json").read_text())["pick"] == summary["pick"]
    assert json.loads((out / "summary.json").read_text())["command"].startswith("hwnas demo")


@pytest.mark.slow
def test_demo_on_a_machine_no_shipped_lut_matches_transfers_and_reuses_it(tmp_path, monkeypatch):
    """The newcomer's usual path: no shipped LUT is this machine's, so the demo transfers one from a shipped
    LUT of the same profiler and space (20 networks measured here), searches and judges with it, and a second
    run reuses the transfer LUT instead of measuring again."""
    from conftest import NEWCOMER_ARGS

    from hwnas.latency.lut import LUT

    monkeypatch.setenv("HWNAS_IGNORE_SHIPPED_LUTS", "match")  # no match here, whatever this CPU; donors kept
    out = tmp_path / "demo"
    r = run_cli("demo", "--out", str(out), *NEWCOMER_ARGS, "--quick", timeout=900)
    assert r.returncode in (0, 1, 5), (r.stdout[-3000:], r.stderr[-2000:])  # 1 = measured over the budget
    assert "no shipped ort-cpu LUT matches this machine; transferring from" in r.stdout
    lut_path = out / "lut_ort-cpu_demo_transfer.json"
    lut = LUT.load(lut_path)
    assert lut.transfer["networks"] == 20 and lut.reference is not None
    summary = json.loads((out / "summary.json").read_text())
    assert summary["lut"] == str(lut_path) and summary["lut_provenance"].startswith("transferred from")
    assert summary["predicted_ms"] > 0 and summary["measured_ms"] > 0
    verdict = [line for line in r.stdout.splitlines() if line.startswith(("PASS:", "FAIL:", "UNCERTAIN:"))]
    assert "transferred from" in verdict[-1]  # the verdict line says where the prediction came from
    before = lut_path.read_bytes()
    r2 = run_cli("demo", "--out", str(out), *NEWCOMER_ARGS, "--quick", timeout=900)
    assert r2.returncode in (0, 1, 5), (r2.stdout[-3000:], r2.stderr[-2000:])
    assert f"[1/4] LUT: reusing {lut_path}, transferred from" in r2.stdout and "already trained" in r2.stdout
    assert lut_path.read_bytes() == before


@pytest.mark.slow
def test_demo_on_network_demo_searches_with_naswot_refines_and_says_what_its_accuracy_axis_is_worth(tmp_path):
    """The default demo: network-demo, NASWOT on the data for every arch, the best under the budget trained
    briefly and re-ranked, finalize of the refined pick, and a last line with the accuracy axis's measured worth.
    Whatever this machine is: a matching shipped LUT, a transfer from the closest one, or a build."""
    out = tmp_path / "demo"
    r = run_cli("demo", "--out", str(out), "--population", "6", "--generations", "1", "--refine", "2",
                "--refine-epochs", "1", "--quick", timeout=1500)
    assert r.returncode in (0, 1, 5), (r.stdout[-3000:], r.stderr[-2000:])
    for step in ("[1/4] LUT", "[2/4] search", "proxy:naswot on fashion-small", "[3/4] refine", "[4/4] finalize"):
        assert step in r.stdout, step
    refined = json.loads((out / "search" / "refine.json").read_text())
    assert len(refined["trained"]) == 2 and refined["config"]["epochs"] == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["space"] == "network-demo" and summary["pick"] == refined["pick"]
    assert summary["accuracy_axis"].startswith("accuracy axis: multifidelity ranked network-demo's 30")
    assert summary["accuracy_axis"] in r.stdout and "MACs" in summary["accuracy_axis"]
    assert (out / "final" / "model.onnx").is_file() and not (out / "supernet.pt").exists()
