"""Few-shot latency transfer (hwnas.measuring.transfer): real LUTs (shipped, or built here), real measurements."""
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from hwnas.spaces.blocks import LayerDesc
from hwnas.measuring.sampling import sample_archs
from hwnas.latency.lut import LUT, LUTError
from hwnas.measuring.measure import profiler_options
from hwnas.latency.predict import latency_predictor
from hwnas.measuring.profiling import build_lut
from hwnas.measuring.transfer import PROGRESS_SUFFIX, transfer_lut
from hwnas.measuring.transfer_fit import (Design, block_type, choose_networks, donor_plus_counts, feature_rows,
                                          fit_transfer, recalibrated_donor, space_extremes)

from conftest import ROOT, saved

SHIPPED_DEMO = ROOT / "luts" / "amd-epyc-2c_ort-cpu_demo.json"


def _cli(*argv) -> tuple[int, str, str]:
    from hwnas.app.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(map(str, argv)))
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def quick_donor(tmp_path_factory, small_space, quick_policy):
    """A real quick LUT (torch-cpu, short timing runs, 8 calibration networks) of the two-stage demo space at 24 px."""
    out = tmp_path_factory.mktemp("donor") / "quick-torch-cpu.json"
    build_lut("torch-cpu", small_space, out, resolutions=[24], profiler_options={"policy": quick_policy},
              calib_archs=8, reference=False, progress=False, command="pytest quick donor", processes=0)
    return out


def test_the_fit_recovers_a_known_per_type_scaling():
    """A device whose blocks cost the shipped demo LUT's times a known factor per block type (and whose networks
    add the donor's calibration, 1.3x): the fit finds the factors from 30 networks and predicts others exactly."""
    donor = LUT.load(SHIPPED_DEMO)
    space = donor.search_space()
    keys = sorted({d.key for d in space.all_layers()})
    design = Design(donor, space, keys)
    truth = {t: 1.3 * (1.0 + 0.5 * ("k5" in t) - 0.3 * t.endswith(":se") + 0.2 * (t == "head")) for t in design.types}
    true_ms = np.array([donor.entries[k]["median_ms"] * truth[block_type(LayerDesc.from_key(k))] for k in keys])
    nets = choose_networks(design, sample_archs(space, 300, 0, extremes=False), space_extremes(space, space.resolutions),
                           30)
    C, io_, n = design.counts(nets)
    a, b, c, d = design.coef
    y = feature_rows(true_ms * a, C, io_, n) @ np.array([1.0, 1.3 * b, 1.3 * c, 1.3 * d])
    fit = fit_transfer(design, C, io_, n, y)
    got = fit.summary(design)["type_scale"]
    for t, want in truth.items():  # the stem, last conv and head are in every network once: only their sum with
        if t.startswith("mbconv"):  # the constant is identifiable (held-out networks below check that)
            assert got[t] == pytest.approx(want, rel=0.03), t
    held = sample_archs(space, 40, 1, exclude={x.id for x in nets}, extremes=False)
    Ch, ioh, nh = design.counts(held)
    want = feature_rows(true_ms * a, Ch, ioh, nh) @ np.array([1.0, 1.3 * b, 1.3 * c, 1.3 * d])
    pred = feature_rows(design.block_ms(fit.theta), Ch, ioh, nh) @ design.calibration_coef(fit.theta)
    assert np.max(np.abs(pred / want - 1)) < 0.01
    assert fit.loo_mape_pct < 1.0



def _shipped_demo_design(networks: int):
    """The shipped demo LUT's transfer design and the networks a transfer of that size would measure."""
    donor = LUT.load(SHIPPED_DEMO)
    space = donor.search_space()
    design = Design(donor, space, sorted({d.key for d in space.all_layers()}))
    pool = sample_archs(space, 300, 0, extremes=False)
    return design, choose_networks(design, pool, space_extremes(space, space.resolutions), networks)


def test_a_device_that_differs_by_per_block_overhead_is_fitted_by_the_recalibrated_donor():
    """torch-cpu against an ort-cpu donor: the same blocks in the same proportions, plus a framework cost per
    block (measured: the per-type fit, pulled toward the donor, 76 % within +-10 % where this refit had 100 %).
    The recalibrated donor (calibrate's models on the donor's block sums) fits such a device exactly, its
    leave-one-out error far below the per-type fit's, which is what transfer_lut compares to pick one."""
    design, nets = _shipped_demo_design(20)
    C, io_, n = design.counts(nets)
    raw = feature_rows(design.d, C, io_, n)
    y = 0.4 * raw[:, 0] + 0.02 * n + 0.01  # 0.4x the donor's block sum, 20 us per block, 10 us per network
    recal = recalibrated_donor(design, C, io_, n, y)
    assert recal.model in ("boundary", "donor+macs") and recal.loo_mape_pct < 0.01
    assert recal.loo_within_10_pct == 100.0 and len(recal.loo_errors_pct) == 20
    assert recal.coef == pytest.approx([1.0, 0.0, 0.02, 0.01], abs=1e-6)  # the scale lives in the blocks
    assert recal.block_ms == pytest.approx(0.4 * design.d, rel=1e-6) and recal.rho == pytest.approx(0.4)
    assert fit_transfer(design, C, io_, n, y).loo_mape_pct > 10 * recal.loo_mape_pct
    assert recalibrated_donor(design, C[:1], io_[:1], n[:1], y[:1]) is None  # one network: no leave-one-out error


def test_a_device_whose_compute_costs_more_is_fitted_by_the_donor_plus_a_cost_per_mac():
    """x86 -> an emulated Cortex-A76 (qemu): MACs alone ranked its networks better than the donor's blocks
    (tau 0.896 against 0.83). A device whose block costs are part the donor's, part MACs: donor+macs finds both
    parts and predicts networks it did not see exactly, where the block sums under calibrate's models cannot."""
    design, nets = _shipped_demo_design(20)
    space = design.space
    true_block = 5.0 * design.d + 40.0 * design.mac_scale * design.macs
    C, io_, n = design.counts(nets)
    y = C @ true_block + 0.5
    recal = recalibrated_donor(design, C, io_, n, y)
    assert recal.model == "donor+macs" and recal.loo_mape_pct < 0.01, recal.scores
    assert recal.scores["transfer:boundary"] > 1.0  # the donor's block sums alone miss it
    assert recal.block_ms == pytest.approx(true_block, rel=1e-6)
    held = sample_archs(space, 30, 1, exclude={x.id for x in nets}, extremes=False)
    Ch, ioh, nh = design.counts(held)
    pred = feature_rows(recal.block_ms, Ch, ioh, nh) @ recal.coef
    assert pred == pytest.approx(Ch @ true_block + 0.5, rel=1e-6)

def test_a_device_with_a_cost_per_op_the_donor_lacks_is_fitted_by_the_donor_plus_counts():
    """A GPU at batch 256 against a CPU donor (HELP's data): a ridge over op counts alone ranked its networks at
    0.98-0.999, the donor's blocks at 0.58. A device whose blocks cost part the donor's time, part a fixed cost per
    block of each type: donor+counts finds it, and predicts networks it did not see, where the others miss."""
    design, nets = _shipped_demo_design(20)
    space = design.space
    per_type = {t: 0.02 * (i + 1) for i, t in enumerate(design.types)}
    true_block = 0.3 * design.d + design.T @ np.array([per_type[t] for t in design.types])
    C, io_, n = design.counts(nets)
    y = C @ true_block + 0.2
    recal = recalibrated_donor(design, C, io_, n, y)
    assert recal.model == "donor+counts" and recal.loo_mape_pct < 0.5, recal.scores
    assert recal.scores["transfer:boundary"] > 2 * recal.loo_mape_pct
    assert recal.coef[:3] == pytest.approx([1.0, 0.0, 0.0]) and np.all(recal.block_ms > 0)
    held = sample_archs(space, 30, 1, exclude={x.id for x in nets}, extremes=False)
    Ch, ioh, nh = design.counts(held)
    pred = feature_rows(recal.block_ms, Ch, ioh, nh) @ recal.coef
    assert pred == pytest.approx(Ch @ true_block + 0.2, rel=0.01)
    assert donor_plus_counts(design, C[:5], y[:5]) is None  # fewer networks than its columns need


def test_networks_span_the_latency_range_and_block_types_and_are_nested():
    donor = LUT.load(SHIPPED_DEMO)
    space = donor.search_space()
    design = Design(donor, space, sorted({d.key for d in space.all_layers()}))
    pool = sample_archs(space, 300, 0, extremes=False)
    ext = space_extremes(space, space.resolutions)
    ten = choose_networks(design, pool, ext, 10)
    assert [a.id for a in choose_networks(design, pool, ext, 5)] == [a.id for a in ten[:5]]  # more reuses fewer
    assert [a.id for a in ten[:2]] == [a.id for a in ext]  # the smallest and the largest of the space
    pred = latency_predictor(donor, space).predict_many(ten)
    everyone = latency_predictor(donor, space).predict_many(pool)
    assert pred.min() <= np.quantile(everyone, 0.01) and pred.max() >= np.quantile(everyone, 0.99)
    seen = {block_type(d) for a in ten for d in a.layers()}
    assert seen == set(design.types)
    assert len({a.id for a in ten}) == 10


@pytest.mark.parametrize("case", ["other-space", "gpu-donor", "missing-blocks"])
def test_bad_donors_are_refused_saying_what_to_do(case, tmp_path):
    out = tmp_path / "t.json"
    if case == "other-space":
        argv = ["--transfer-from", SHIPPED_DEMO, "--space", "mbv3"]
        said = "is a LUT of space 'demo'.*give a donor LUT of that space"
    elif case == "gpu-donor":
        argv = ["--transfer-from", ROOT / "luts" / "nvidia-h100_torch-cuda_mbv3.json", "--profiler", "ort-cpu"]
        said = "measured on a GPU.*ort-cpu measures on a CPU.*give a donor LUT of a CPU profiler"
    else:
        data = json.loads(SHIPPED_DEMO.read_text())
        del data["entries"]["conv:r32:i3:o8:k3:s2:hswish"]
        holes = tmp_path / "holes.json"
        holes.write_text(json.dumps(data))
        argv = ["--transfer-from", holes]
        said = "lacks 1 of the 128 blocks.*fill the donor first: hwnas profile.*--resolutions 24 28"
    rc, _, err = _cli("profile", *argv, "--out", out)
    assert rc == 2
    assert len(err.strip().splitlines()) == 1
    import re

    assert re.search(said, err), err
    assert not out.exists()


def test_a_built_lut_is_not_replaced_by_a_transfer_nor_a_transfer_lut_extended_by_a_build(tmp_path, quick_donor,
                                                                                         small_space, quick_policy):
    built = tmp_path / "built.json"
    built.write_text(quick_donor.read_text())
    rc, _, err = _cli("profile", "--transfer-from", SHIPPED_DEMO, "--out", built)
    assert rc == 2 and "built by measuring every block" in err and "--force" in err
    t = tmp_path / "t.json"
    transfer_lut(quick_donor, "torch-cpu", t, networks=3, resolutions=[24], processes=0, reference=False,
                 profiler_options=profiler_options(1, pin_cpu=None, policy=quick_policy), progress=False)
    with pytest.raises(LUTError, match="transferred from .*choose another --out"):
        build_lut("torch-cpu", small_space, t, resolutions=[24], profiler_options={"policy": quick_policy},
                  calibrate=False, progress=False, processes=0)


@pytest.mark.slow  # an end-to-end LUT build (the second stage runs it)
def test_transfer_between_two_real_luts_a_quick_one_and_a_full_one(tmp_path, quick_donor, small_space):
    """Donor: the quick torch-cpu LUT. Target: ort-cpu on this machine with the default timing policy, as a full
    build would time it (built here beside it). The transfer LUT is a LUT like any other: every block, a
    calibration, the drift reference, and its transfer record; predictions say where they came from."""
    full = tmp_path / "full-ort-cpu.json"
    opts = profiler_options(1, pin_cpu=None)
    build_lut("ort-cpu", small_space, full, resolutions=[24], profiler_options=opts, calib_archs=8, reference=False,
              progress=False, command="pytest full", processes=0)
    out = tmp_path / "transfer-ort-cpu.json"
    r = transfer_lut(quick_donor, "ort-cpu", out, networks=6, resolutions=[24], profiler_options=opts, processes=0,
                     progress=False)
    lut, full_lut = LUT.load(out), LUT.load(full)
    assert set(lut.entries) == set(full_lut.entries)
    assert lut.profiler == "ort-cpu" and lut.fingerprint["profiler"] == "ort-cpu"
    t = lut.transfer
    assert t["donor"]["path"] == str(quick_donor) and t["donor"]["profiler"] == "torch-cpu"
    assert t["networks"] == 6 == len(lut.calibration["data"]) == r.networks
    assert t["loo_mape_pct"] >= 0 and len(t["loo_errors_pct"]) == 6
    # the model written is the one with the lower leave-one-out error of the two, and the record says which
    scores = lut.calibration["loo_mape_pct"]
    assert lut.calibration["model"] in scores and scores[lut.calibration["model"]] <= scores["transfer"]
    assert t["model"] == ("per-type-ridge" if lut.calibration["model"] == "transfer" else "donor-blocks-recalibrated")
    assert t["loo_mape_pct"] == pytest.approx(scores[lut.calibration["model"]], abs=1e-3)
    assert lut.reference is not None and len(lut.reference["archs"]) == 3  # the same drift reference as any LUT
    assert all(e.get("transferred") for e in lut.entries.values())
    archs = sample_archs(small_space, 10, 3, [24], extremes=False)
    ours, theirs = latency_predictor(lut).predict_many(archs), latency_predictor(full_lut).predict_many(archs)
    assert np.all(ours > 0) and np.all(np.isfinite(ours))
    assert np.all((ours / theirs > 0.5) & (ours / theirs < 2.0))  # same device and profiler: the same ballpark
    assert not (tmp_path / (out.name + PROGRESS_SUFFIX)).exists()
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps(archs[0].to_dict()))
    rc, stdout, _ = _cli("predict", "--lut", out, "--arch", arch)
    assert rc == 0 and f"transferred from {quick_donor}" in stdout


def test_refining_measures_the_least_certain_blocks_and_refits(tmp_path, quick_donor, quick_policy):
    out = tmp_path / "t.json"
    r = transfer_lut(quick_donor, "torch-cpu", out, networks=4, resolutions=[24], processes=0, reference=False,
                     profiler_options=profiler_options(1, pin_cpu=None, policy=quick_policy), progress=False,
                     time_budget_s=1e6, max_refine_blocks=5)
    lut = LUT.load(out)
    measured = lut.transfer["measured_blocks"]
    assert r.blocks_measured == len(measured) == 5
    for k, e in lut.entries.items():
        assert e.get("measured") if k in measured else (e.get("transferred") and e["sd_ms"] >= 0), k
    assert lut.transfer["device_seconds"]["blocks"] > 0


@pytest.mark.slow
def test_a_killed_transfer_resumes_its_measurements(tmp_path, quick_donor, small_space):
    space_file, out = tmp_path / "space.json", tmp_path / "t.json"
    space_file.write_text(json.dumps(small_space.to_dict()))
    progress = tmp_path / (out.name + PROGRESS_SUFFIX)
    cmd = [sys.executable, str(ROOT / "tools" / "profile_device.py"), "--transfer-from", str(quick_donor),
           "--profiler", "ort-cpu", "--space-file", str(space_file), "--resolutions", "24", "--networks", "12",
           "--processes", "0", "--pin-cpu", "none", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300  # a safety net only
    while len(saved(progress, "rows")) < 2:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no network was saved"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    stored = saved(progress, "rows")
    assert not out.exists()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"({12 - len(stored)} now, {len(stored)} resumed)" in done.stdout
    rows = {r["arch_id"]: r for r in LUT.load(out).calibration["data"]}
    assert len(rows) == 12
    for arch_id, row in stored.items():
        assert rows[arch_id]["measured"] == row["measured"]  # reused, not measured again
    assert not progress.exists()


def test_a_damaged_transfer_record_is_refused(tmp_path, quick_donor, quick_policy):
    out = tmp_path / "t.json"
    transfer_lut(quick_donor, "torch-cpu", out, networks=2, resolutions=[24], processes=0, reference=False,
                 profiler_options=profiler_options(1, pin_cpu=None, policy=quick_policy), progress=False)
    data = json.loads(out.read_text())
    data["transfer"]["networks"] = 0
    out.write_text(json.dumps(data))
    with pytest.raises(LUTError, match="field 'transfer' needs 'networks'.*--transfer-from"):
        LUT.load(out)


def test_a_damaged_progress_file_loses_only_its_damaged_measurements(tmp_path, quick_donor, quick_policy):
    """A progress row with no measurement (was: KeyError, exit 4, after the drift reference) or a median of -1
    (was: accepted, a LUT 57 % off) is measured again; the good rows are reused; a truncated file is said."""
    from hwnas.measuring.transfer import PROGRESS_SUFFIX

    opts = profiler_options(1, pin_cpu=None, policy=quick_policy)
    first = tmp_path / "first.json"
    transfer_lut(quick_donor, "torch-cpu", first, networks=3, resolutions=[24], processes=0, reference=False,
                 profiler_options=opts, progress=False)
    lut = LUT.load(first)
    rows = {r["arch_id"]: {k: r[k] for k in ("arch_id", "arch", "measured", "seconds")} for r in lut.calibration["data"]}
    bad_a, bad_b, good = sorted(rows)
    rows[bad_a].pop("measured")
    rows[bad_b]["measured"]["median_ms"] = -1.0
    out = tmp_path / "t.json"
    progress = tmp_path / (out.name + PROGRESS_SUFFIX)
    progress.write_text(json.dumps({"format": "hwnas-transfer-progress", "profiler": "torch-cpu",
                                    "fingerprint": lut.fingerprint, "space": lut.space,
                                    "policy": lut.settings.get("policy"), "rows": rows, "blocks": {"x": 1},
                                    "reference": None}))
    said = []
    r = transfer_lut(quick_donor, "torch-cpu", out, networks=3, resolutions=[24], processes=0, reference=False,
                     profiler_options=opts, progress=False, log=said.append)
    assert (r.resumed, r.measured_now) == (1, 2), said
    assert any("discarding 3 damaged measurement(s)" in s for s in said), said
    new = {x["arch_id"]: x for x in LUT.load(out).calibration["data"]}
    assert new[good]["measured"] == rows[good]["measured"] and new[bad_b]["measured"]["median_ms"] > 0
    out2 = tmp_path / "t2.json"
    progress2 = tmp_path / (out2.name + PROGRESS_SUFFIX)
    progress2.write_text('{"format": "hwnas-transfer-progress", "rows": {')  # cut short
    said.clear()
    transfer_lut(quick_donor, "torch-cpu", out2, networks=1, resolutions=[24], processes=0, reference=False,
                 profiler_options=opts, progress=False, log=said.append)
    assert any(s.startswith(f"discarding {progress2}") and "taken again" in s for s in said), said


def test_a_progress_path_that_is_a_directory_is_refused_before_measuring(tmp_path, quick_donor, quick_policy):
    from hwnas.measuring.transfer import PROGRESS_SUFFIX, TransferError

    out = tmp_path / "t.json"
    (tmp_path / (out.name + PROGRESS_SUFFIX)).mkdir()
    with pytest.raises(TransferError, match="is a directory; remove it or choose another --out"):
        transfer_lut(quick_donor, "torch-cpu", out, networks=2, resolutions=[24], processes=0, reference=False,
                     profiler_options=profiler_options(1, pin_cpu=None, policy=quick_policy), progress=False)


def test_a_donor_of_another_precision_is_refused(tmp_path, quick_donor):
    """An int8 donor for an fp32 transfer (was: accepted, an "fp32" LUT fitted on int8 block costs)."""
    data = json.loads(quick_donor.read_text())
    data["settings"]["precision"] = "int8"
    donor = tmp_path / "int8-donor.json"
    donor.write_text(json.dumps(data))
    rc, _, err = _cli("profile", "--transfer-from", donor, "--profiler", "torch-cpu", "--networks", "1",
                      "--out", tmp_path / "t.json")
    assert rc == 2 and "is int8 but this transfer is fp32" in err and "add --precision int8" in err, err
    assert not (tmp_path / "t.json").exists()


def test_more_networks_than_a_full_build_costs_are_refused_before_measuring(tmp_path):
    """--networks 10000 (was: accepted silently, and capped by the candidate pool without a word)."""
    out = tmp_path / "t.json"
    rc, _, err = _cli("profile", "--transfer-from", SHIPPED_DEMO, "--networks", "10000", "--out", out)
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "--networks must be a whole number from 1 to 200, got 10000" in err and "drop --transfer-from" in err
    assert not out.exists() and not (tmp_path / (out.name + PROGRESS_SUFFIX)).exists()


def test_a_transfer_lut_as_donor_is_recorded_and_warned_about(tmp_path, quick_donor, quick_policy):
    """A transfer of a transfer fits on a fit (was: taken silently): the LUT names the donor's own donor and the
    result warns, saying what is better."""
    opts = profiler_options(1, pin_cpu=None, policy=quick_policy)
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    transfer_lut(quick_donor, "torch-cpu", first, networks=2, resolutions=[24], processes=0, reference=False,
                 profiler_options=opts, progress=False)
    r = transfer_lut(first, "torch-cpu", second, networks=2, resolutions=[24], processes=0, reference=False,
                     profiler_options=opts, progress=False)
    assert r.donor_transferred_from == str(quick_donor)
    assert LUT.load(second).transfer["donor"]["transferred_from"] == str(quick_donor)
    assert "is itself a transfer" in r.warning() and "a donor built in full" in r.warning()
    assert "transferred_from" not in LUT.load(first).transfer["donor"]


# -- issue 47 item 7: a fit that is not physically plausible is never written as a LUT -------------------------
def _eight_networks_of_the_shipped_demo_donor():
    """The 8 networks a transfer from the shipped demo LUT measures (seed 0), with latencies that grow as the square
    of their MACs: what a busy host's timings did to a resumed transfer. The unconstrained per-type fit prices every
    block type at a negative share of the donor's time (-0.09x), its blocks kept > 0 ms by the MAC term alone."""
    from hwnas.measuring.transfer import POOL, check_donor

    donor = LUT.load(SHIPPED_DEMO)
    space = donor.search_space()
    res = tuple(space.resolutions)
    keys = check_donor(donor, SHIPPED_DEMO, space, res, donor.profiler, donor.fingerprint)
    design = Design(donor, space, keys)
    archs = choose_networks(design, sample_archs(space, POOL, 0, res, extremes=False), space_extremes(space, res), 8)
    C, io_, nb = design.counts(archs)
    macs = C @ design.macs
    y = np.round((macs / macs.mean()) ** 2 * design.prior(C, io_, nb).mean(), 6)
    return donor, design, archs, C, io_, nb, y


def test_an_implausible_per_type_fit_is_refit_under_constraints_or_replaced():
    from hwnas.measuring.transfer_fit import transfer_model

    donor, design, archs, C, io_, nb, y = _eight_networks_of_the_shipped_demo_donor()
    fit = fit_transfer(design, C, io_, nb, y)
    summary = fit.summary(design)
    assert summary["rho"] > 0 and min(summary["type_scale"].values()) > 0, summary
    model = transfer_model(design, C, io_, nb, y, fit)
    assert np.all(model.block_ms >= 1e-3 * design.d)  # transfer_fit.MIN_RATIO


def test_a_resumed_transfer_whose_timings_fit_only_nonsense_writes_a_plausible_lut_or_none(tmp_path, quick_policy):
    """The issue's run: a transfer killed and resumed, its saved timings those of a busy host. Resumed from the
    progress file (nothing measured again), the real CLI writes a LUT whose every block type costs a positive share
    of the donor's time; timings no plausible fit explains (a device 10^5x faster) are refused, nothing written."""
    from hwnas.measuring.measure import available_profiler

    donor, design, archs, C, io_, nb, y = _eight_networks_of_the_shipped_demo_donor()
    opts = profiler_options(1, pin_cpu=None, policy=quick_policy)
    prof = available_profiler("torch-cpu", opts)
    settings = prof.settings() if hasattr(prof, "settings") else {}

    def progress(out, ys):
        rows = {a.id: {"arch_id": a.id, "arch": a.to_dict(), "measured": {"median_ms": float(v)}, "seconds": 0.1}
                for a, v in zip(archs, ys)}
        (tmp_path / (out.name + PROGRESS_SUFFIX)).write_text(json.dumps({
            "format": "hwnas-transfer-progress", "profiler": "torch-cpu", "fingerprint": prof.fingerprint(),
            "space": donor.space, "policy": settings.get("policy"), "rows": rows, "blocks": {}, "reference": None}))

    out = tmp_path / "t.json"
    progress(out, y)
    said = []
    r = transfer_lut(SHIPPED_DEMO, "torch-cpu", out, networks=8, processes=0, reference=False,
                     profiler_options=opts, progress=False, log=said.append)
    assert (r.resumed, r.measured_now) == (8, 0), said
    lut = LUT.load(out)
    t = lut.transfer
    if t["model"] != "donor-blocks-recalibrated":
        assert t["rho"] > 0 and min(t["type_scale"].values()) > 0, t
    ratio = [lut.entries[k]["median_ms"] / donor.entries[k]["median_ms"] for k in design.keys]
    assert min(ratio) >= 1e-3, min(ratio)
    out2 = tmp_path / "t2.json"
    progress(out2, y * 1e-5)
    with pytest.raises(Exception) as e:
        transfer_lut(SHIPPED_DEMO, "torch-cpu", out2, networks=8, processes=0, reference=False,
                     profiler_options=opts, progress=False)
    from hwnas.measuring.transfer import TransferError

    assert isinstance(e.value, TransferError), e.value
    msg = str(e.value)
    assert "fit no physically plausible LUT" in msg and "--force" in msg and "nothing was written" in msg, msg
    assert not out2.exists() and (tmp_path / (out2.name + PROGRESS_SUFFIX)).exists()
