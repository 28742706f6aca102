"""openvino-cpu and litert-cpu through the device agent, for real: the torch-free agent venv (OpenVINO and LiteRT
linked in when installed here), a real agent process on a loopback socket, real files sent and timed there."""
import pytest

from _tflite import dense_hardswish
from test_agent import Agent, agent, token  # noqa: F401 - the agent process and its token, as test_agent runs them
from hwnas.profilers import create_profiler
from hwnas.spaces.blocks import LayerDesc

BLOCK = LayerDesc("mbconv", 16, 16, 16, kernel=3, stride=1, mid=48, se=True, act="hswish")


def _runtime(agent, token, key):
    from hwnas_agent.client import AgentClient

    runtimes = AgentClient(agent.url, str(token)).connect().fingerprint().get("runtimes") or {}
    if not runtimes.get(key):
        pytest.skip(f"the agent's venv has no {key} (not installed here)")
    return runtimes


def test_openvino_cpu_times_a_block_and_an_ir_on_the_device(agent, token, quick_policy, tmp_path):
    from hwnas.finalize.openvino_ir import export_ir
    from hwnas.profilers._ort import export_onnx

    runtimes = _runtime(agent, token, "openvino")
    p = create_profiler("openvino-cpu", policy=quick_policy, device=agent.url, token_file=str(token))
    assert p.availability() is None
    assert p.measure(BLOCK.build(), BLOCK.input_shape).median_ms > 0
    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_bytes(export_onnx(BLOCK.build(), BLOCK.input_shape))
    xml, _ = export_ir(onnx_path, tmp_path)
    before = len(list((agent.workdir / "models").glob("*.openvino")))
    assert p.measure_onnx(xml).median_ms > 0
    assert len(list((agent.workdir / "models").glob("*.openvino"))) == before + 1  # the packed IR went there
    fp = p.fingerprint()
    assert fp["openvino"] == runtimes["openvino"] and fp["openvino_device"] and fp["transport"].endswith(agent.url)


def test_litert_cpu_times_a_tflite_file_on_the_device(agent, token, quick_policy, tmp_path):
    runtimes = _runtime(agent, token, "ai_edge_litert")
    path = tmp_path / "dense.tflite"
    path.write_bytes(dense_hardswish()[0])
    p = create_profiler("litert-cpu", policy=quick_policy, device=agent.url, token_file=str(token), threads=2)
    assert p.measure_onnx(path).median_ms > 0
    assert list((agent.workdir / "models").glob("*.tflite"))
    fp = p.fingerprint()
    assert fp["ai_edge_litert"] == runtimes["ai_edge_litert"] and fp["xnnpack"] is True and fp["threads"] == 2


def test_a_device_without_the_runtimes_is_named_in_one_line(bare_agent_venv, tmp_path_factory, token, tmp_path):
    from conftest import cli_here

    bare = Agent(bare_agent_venv, tmp_path_factory.mktemp("bare-work"), token).start()
    try:
        for name, missing in (("openvino-cpu", "openvino"), ("litert-cpu", "ai_edge_litert")):
            reason = create_profiler(name, device=bare.url, token_file=str(token)).availability()
            assert f"has no {missing}" in reason and "pip install" in reason
        path = tmp_path / "dense.tflite"
        path.write_bytes(dense_hardswish()[0])
        r = cli_here("measure", "--profiler", "litert-cpu", "--device", bare.url, "--token-file", str(token),
                     str(path))
        assert r.returncode == 3 and "has no ai_edge_litert" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    finally:
        bare.kill()


def _converts(name):
    from hwnas.profilers.litert_cpu import converter_version

    return name != "litert-cpu" or converter_version() is not None


@pytest.mark.slow  # a bundle exported, timed by the agent's own command, imported
@pytest.mark.parametrize("name", ["openvino-cpu", "litert-cpu"])
def test_an_offline_bundle_is_exported_timed_by_the_agent_and_imported(name, agent_venv, small_space, tmp_path):
    """The offline path: blocks exported (litert-cpu: converted to .tflite, where litert-torch is) into a bundle,
    timed on the device by `hwnas-agent run` with no hwnas there, the timings imported into a LUT."""
    import json
    import subprocess

    from conftest import cli_here
    from hwnas.latency.lut import LUT

    if not _converts(name):
        pytest.skip("litert-torch is not installed: a litert-cpu bundle's blocks cannot be converted here")
    space_file = tmp_path / "space.json"
    space_file.write_text(json.dumps(small_space.to_dict()))
    flags = ["--profiler", name, "--space-file", str(space_file), "--resolutions", "24", "--quick", "--no-calibrate"]
    r = cli_here("profile", *flags, "--export-bundle", str(tmp_path / "bundle"))
    assert r.returncode == 0, r.stderr
    fmt = {"openvino-cpu": "openvino", "litert-cpu": "tflite"}[name]
    assert json.loads((tmp_path / "bundle" / "manifest.json").read_text())["settings"]["format"] == fmt
    timings = tmp_path / "timings.json"
    done = subprocess.run([str(agent_venv / "bin" / "python"), "-m", "hwnas_agent", "run", str(tmp_path / "bundle"),
                           "--out", str(timings)], capture_output=True, text=True, cwd="/", timeout=600)
    assert done.returncode == 0, done.stderr
    r = cli_here("profile", *flags, "--import-timings", str(timings), "--out", str(tmp_path / "lut.json"))
    assert r.returncode == 0, r.stderr
    lut = LUT.load(tmp_path / "lut.json")
    assert lut.profiler == name and len(lut.entries) == len({d.key for d in small_space.all_layers([24])})
    assert all(e["median_ms"] > 0 for e in lut.entries.values())
    if name == "litert-cpu":  # the LUT names what converted its blocks where the bundle was exported
        assert lut.settings["converter"].startswith("litert-torch ") and lut.fingerprint["ai_edge_litert"]
