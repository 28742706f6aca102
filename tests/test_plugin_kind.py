"""The space kind docs/plugins.md writes from scratch (``chain``: its own block type ``fused``, a weight-sharing
supernet), installed from the page as a real distribution (a dist-info with entry points, as test_registry installs
the page's other plugins) and run through the page's own commands: sample, a proxy's scores, a supernet trained
for an epoch and its scores; its LUT keys rebuilt through the block registry in a fresh process; and (slow) a LUT
timed in worker processes, predictions, a search with the supernet and finalize."""
from __future__ import annotations

import json
import math
import os
import re
import shlex
import subprocess
import sys

import pytest

from conftest import ROOT, cli_here
from test_registry import DOC, doc_plugins, forget_modules, install  # noqa: F401 (forget_modules: a fixture)


def page_example() -> tuple[dict, list[list[str]]]:
    """The section's space file (``chain.json``) and its ``hwnas`` commands, as the page shows them."""
    section = DOC.read_text().split("## A kind from scratch", 1)[1]
    space = json.loads(re.search(r"```json\n(.*?)```", section, flags=re.S).group(1))
    block = re.search(r"```\n(hwnas .*?)```", section, flags=re.S).group(1)
    return space, [shlex.split(line)[1:] for line in block.splitlines()]


@pytest.fixture
def chain(tmp_path, monkeypatch, forget_modules, tiny_data):  # noqa: F811
    """The page's package installed, its chain.json in the working directory; returns the page's commands
    by subcommand, ``--data digits`` given the tiny data set instead (300 digits images)."""
    from hwnas.spaces import blocks

    modules, groups = doc_plugins()
    install(tmp_path / "site", monkeypatch, "my-package", groups, modules)
    monkeypatch.setattr(blocks, "_LOADED", dict(blocks._LOADED))  # the page's block type is forgotten afterwards
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    space, commands = page_example()
    (work / "chain.json").write_text(json.dumps(space))
    out: dict[str, list[list[str]]] = {}
    for args in commands:
        out.setdefault(args[0], []).append([tiny_data if a == "digits" else a for a in args])
    return out


def run(args: list[str], *extra: str) -> str:
    r = cli_here(*args, *extra)
    assert r.returncode == 0, f"hwnas {' '.join(args)}: {r.stderr}"
    return r.stdout


def test_the_page_shows_each_command_once_for_a_kind_of_its_own():
    space, commands = page_example()
    assert space["kind"] == "chain" and "digits" in " ".join(" ".join(c) for c in commands)
    assert [c[0] for c in commands] == ["sample", "score", "supernet", "score", "profile", "predict", "search",
                                       "finalize"]
    code = doc_plugins()[0]["my_package.chain"]
    lines = sum(1 for line in code.splitlines() if line.strip())
    assert f"The whole file is {lines} non-blank lines" in " ".join(DOC.read_text().split())  # the page's count


def test_sample_proxy_supernet_and_its_scores_as_the_page_runs_them(chain):
    import torch

    from hwnas.evaluate.supernet import load_supernet
    from hwnas.spaces.archlist import read_arch_list
    from hwnas.spaces.base import get_space

    run(chain["sample"][0])
    space = get_space("chain.json")
    archs = read_arch_list(space, "archs.jsonl")
    assert len(archs) == 8 and type(space).__module__ == "my_package.chain"
    assert {d.op for a in archs for d in a.layers()} == {"conv", "fused", "poolhead"}

    proxy, supernet = chain["score"]
    scores = [float(line.split()[1]) for line in run(proxy).splitlines()[1:]]
    assert len(scores) == 8 and all(math.isfinite(s) for s in scores) and len(set(scores)) > 1

    run(chain["supernet"][0])
    scored = [float(line.split()[1]) for line in run(supernet).splitlines()[1:]]
    assert len(scored) == 8 and all(0 <= s <= 100 for s in scored)

    # the supernet as the evaluator and finalize use it: an arch's path equals its extracted network
    net, blob = load_supernet("sn.pt")
    assert blob["epochs_done"] == 1 and blob["space"]["kind"] == "chain"
    x = torch.randn(4, 1, 16, 16)
    for arch in archs[:3]:
        model = net.extract(arch).eval()
        assert torch.allclose(model(x), net(x, arch), atol=1e-5)
        assert sum(p.numel() for p in model.parameters()) == sum(d.params for d in arch.layers())
    # it declares no fair sampling: asked for, it is refused rather than handed "fair" to ignore
    r = cli_here(*chain["supernet"][0], "--sampling", "fair", "--out", "fair.pt")
    assert r.returncode != 0 and "sampling fair is for cell spaces" in r.stderr, r.stderr


def test_its_lut_keys_build_through_the_block_registry_in_a_fresh_process(chain, tmp_path):
    """What a measuring worker does: a fresh interpreter that knows the block type only from its entry point
    rebuilds every key of the space's LUT, runs it, and counts what the descriptor says."""
    code = """
import json, sys, torch
from hwnas.spaces.base import get_space
from hwnas.spaces.blocks import LayerDesc
keys = [d.key for d in get_space("chain.json").all_layers()]
rows = []
for key in keys:
    d = LayerDesc.from_key(key)
    m = d.build().eval()
    y = m(torch.randn(d.input_shape))
    rows.append([key, list(y.shape) == list(d.output_shape), sum(p.numel() for p in m.parameters()) == d.params])
print(json.dumps(rows))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(ROOT)])}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    fused = [k for k, _, _ in rows if k.startswith("fused:")]
    assert len(fused) == 6 and "fused:r8:i8:o8:k5:s1:m32:relu" in fused  # 2 kernels x 3 expands, at 8 px
    assert all(shape_ok and params_ok for _, shape_ok, params_ok in rows), rows


@pytest.mark.slow
def test_lut_predict_search_and_finalize_as_the_page_runs_them(chain):
    """The page's LUT timed in worker processes (short timing runs), its predictions, a search scored by the
    supernet (the generic predictor finds the fastest arch from the genes) and finalize of its pick."""
    from hwnas.latency.lut import LUT

    run(chain["sample"][0])
    run(chain["supernet"][0])
    run(chain["profile"][0], "--quick", "--no-calibrate")
    lut = LUT.load("chain-lut.json")
    assert any(k.startswith("fused:") for k in lut.entries)
    predicted = re.findall(r"predicted +[\d.]+ ms", run(chain["predict"][0]))
    assert len(predicted) == 8
    run(chain["search"][0], "--population", "4", "--generations", "1")
    assert json.loads(open("run/best.json").read())
    r = cli_here(*chain["search"][0], "--strategy", "differentiable", "--out", "run-d")
    assert r.returncode != 0 and "relaxes its choices" in r.stderr, r.stderr
    out = run(chain["finalize"][0], "--processes", "1")
    assert "parity" in out and "measured median" in out, out
