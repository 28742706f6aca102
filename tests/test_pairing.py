"""Paired measurement (hwnas.measuring.pairing): the arithmetic, the LUT record, and every path measuring as the LUT was built.

Whether pairing cancels slow spells is measured in tools/bench_interleave.py, not asserted here."""
import json

import pytest

from hwnas_agent.timing import TimingPolicy, time_paired


def test_a_model_paired_with_itself_measures_its_calm_latency(tmp_path):
    from hwnas.profilers._ort import make_session, session_runner
    from tests.test_agent import tiny_onnx

    run = session_runner(make_session(tiny_onnx(tmp_path), ("CPUExecutionProvider",)))
    p = time_paired(run, run, TimingPolicy.quick())
    assert 0.85 < p.ratio.median_ms < 1.15 and p.ratio.n >= 5
    m = p.normalized(2.5)  # ratio x the reference's calm latency, sample by sample
    assert m.median_ms == pytest.approx(2.5 * p.ratio.median_ms) and m.n == p.ratio.n


def test_pairing_options_are_checked(tmp_path):
    from hwnas.profilers import ProfilerConfigError, create_profiler

    with pytest.raises(ProfilerConfigError, match="pair_calm_ms"):
        create_profiler("ort-cpu", pair_with=str(tmp_path / "ref.onnx"))
    with pytest.raises(ProfilerConfigError, match="> 0"):
        create_profiler("ort-cpu", pair_with=str(tmp_path / "ref.onnx"), pair_calm_ms=0.0)


@pytest.fixture(scope="module")
def paired_lut(tmp_path_factory, small_space, quick_policy):
    from hwnas.measuring.measure import profiler_options
    from hwnas.measuring.profiling import build_lut

    out = tmp_path_factory.mktemp("paired") / "paired.json"
    build_lut("ort-cpu", small_space, out, resolutions=[24], profiler_options=profiler_options(1, policy=quick_policy),
              calib_archs=5, progress=False, command="pytest", processes=1, paired=True)
    return out


@pytest.mark.slow  # an end-to-end LUT build (the second stage runs it)
def test_a_paired_lut_records_its_reference_and_stays_paired(paired_lut, small_space, quick_policy):
    from hwnas.latency.lut import LUT
    from hwnas.measuring.measure import lut_profiler_options, profiler_options
    from hwnas.measuring.pairing import reference_arch
    from hwnas.measuring.profiling import build_lut

    lut = LUT.load(paired_lut)
    pairing = lut.settings["pairing"]
    assert pairing["reference_id"] == reference_arch(small_space).id and pairing["calm_ms"] > 0
    assert lut.calibration["complete"] and lut.reference
    opts = lut_profiler_options(lut)
    assert opts["pair_calm_ms"] == pairing["calm_ms"] and opts["pair_with"].endswith(f"{pairing['reference_id']}.onnx")
    # resumed without --paired: still paired, the reference and its calm latency kept
    build_lut("ort-cpu", small_space, paired_lut, resolutions=[24], profiler_options=profiler_options(1, policy=quick_policy),
              calib_archs=5, progress=False, command="pytest", processes=1)
    assert LUT.load(paired_lut).settings["pairing"] == pairing


def test_paired_refused_for_a_profiler_of_modules(small_space, quick_policy, tmp_path):
    from hwnas.latency.lut import LUTError
    from hwnas.measuring.profiling import build_lut

    with pytest.raises(LUTError, match="--paired needs a profiler that times model files"):
        build_lut("torch-cpu", small_space, tmp_path / "t.json", resolutions=[24], profiler_options={"policy": quick_policy},
                  calibrate=False, progress=False, processes=0, paired=True)


@pytest.mark.slow  # an end-to-end LUT build (the second stage runs it)
def test_paired_measurement_through_the_agent(paired_lut, tmp_path, agent_venv):
    """The device pairs too: the reference is sent like any model, and the agent alternates the two."""
    from hwnas.latency.lut import LUT
    from hwnas.measuring.measure import lut_profiler_options, target_device
    from hwnas.profilers import create_profiler
    from hwnas_agent.protocol import digest
    from tests.test_agent import Agent, tiny_onnx

    token = tmp_path / "token"
    token.write_text("another-test-token-0123456789")
    agent = Agent(agent_venv, tmp_path / "work", token).start()
    try:
        lut = LUT.load(paired_lut)
        with target_device(agent.url, str(token)):
            profiler = create_profiler("ort-cpu", **lut_profiler_options(lut))
        m = profiler.measure_onnx(tiny_onnx(tmp_path))
        assert m.median_ms > 0
        ref = open(lut_profiler_options(lut)["pair_with"], "rb").read()
        assert (agent.workdir / "models" / f"{digest(ref)}.onnx").is_file()
    finally:
        agent.kill()
