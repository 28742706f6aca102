"""The noise probe (hwnas.measuring.noise_probe): its arithmetic on series made by hand, and one real run whose
structure (not its timings: this machine is shared) is checked, through the library and the command."""
from __future__ import annotations

import json

import pytest

from hwnas.measuring.noise_probe import (NoiseProbe, ProbeError, Window, agree, item_noise, pair_agreement, probe,
                                         slow_spells, successive_agreement)


def _windows(item: str, medians: list[float], start: float = 0.0, step: float = 0.5) -> list[Window]:
    return [Window(item, start + i * step, start + (i + 1) * step, m, 0.01) for i, m in enumerate(medians)]


def test_agreement_is_symmetric_and_within_ten_percent():
    assert agree(1.0, 1.1) and agree(1.1, 1.0) and not agree(1.0, 1.11)
    assert successive_agreement([1.0, 1.05, 2.0, 2.05]) == pytest.approx(100 * 2 / 3)
    assert pair_agreement([1.0, 1.05, 2.0, 2.05]) == pytest.approx(100 * 2 / 6)
    assert successive_agreement([1.0]) == pair_agreement([]) == 100.0


def test_a_slow_spell_is_found_with_its_share_length_and_depth():
    calm, slow = [1.0] * 8, [2.0, 2.0]  # 2 of 10 windows at 2x: one spell of 1 s
    ws = _windows("network", calm[:4] + slow + calm[4:])
    s = slow_spells(ws)
    assert (s.count, s.share_pct, s.typical_s, s.typical_depth) == (1, 20.0, 1.0, 2.0)
    assert slow_spells(_windows("network", [1.0, 1.02, 0.99, 1.01])).count == 0
    assert slow_spells([]).count == 0
    it = item_noise("network", "abc", ws)
    assert it.windows == 10 and it.lower_quartile_ms == 1.0 and it.pairs_agree_pct < 90


def test_the_verdict_says_the_bound_and_the_cause():
    from hwnas.measuring.host_load import HostLoad

    calm = item_noise("block", "k", _windows("block", [0.1] * 6))
    jumpy = item_noise("network", "a", _windows("network", [1.0, 1.6, 1.0, 1.7, 1.0, 1.0]))
    host = HostLoad(15.0, 2, 1.0, 1.0, 0.0, 0.0, 1.0)
    noisy = NoiseProbe("ort-cpu", "mbv3", 15.0, "pinned to cpu 1", 1, calm, jumpy, slow_spells([]), host, "own noise")
    assert noisy.noisy and f"about {jumpy.pairs_agree_pct:.0f} %" in noisy.verdict()
    assert "cannot be judged finer" in noisy.verdict() and "--paired" in noisy.verdict()
    fine = NoiseProbe("ort-cpu", "mbv3", 15.0, "pinned to cpu 1", 1, calm, calm, slow_spells([]), host, "quiet")
    assert not fine.noisy and fine.verdict().startswith("verdict: quiet:") and "judged at ±10 %" in fine.verdict()


def test_a_real_probe_has_the_structure_it_promises(demo):
    from hwnas.measuring.measure import profiler_options
    from hwnas.profilers.base import TimingPolicy

    r = probe("ort-cpu", demo, profiler_options(policy=TimingPolicy.quick()), seconds=1.0)
    assert r.block.windows >= 3 and r.network.windows >= 3 and len(r.windows) == r.block.windows + r.network.windows
    assert r.block.key in {d.key for d in demo.all_layers()} and 0 <= r.fidelity_pct <= 100
    assert r.cause in ("busy neighbour", "own noise", "quiet", "not observed")
    assert r.lines()[-1] == r.verdict() and r.verdict().startswith("verdict: ")
    json.dumps(r.to_dict())
    assert "windows" not in r.summary()
    with pytest.raises(ProbeError, match="> 0 seconds"):
        probe("ort-cpu", demo, profiler_options(), seconds=0)


@pytest.mark.slow
def test_the_probe_command_prints_a_table_and_a_verdict_and_writes_json(tmp_path):
    from conftest import run_cli

    out = tmp_path / "probe.json"
    r = run_cli("probe", "--space", "demo", "--seconds", "1", "--quick", "--json", str(out))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("noise probe: ort-cpu on space demo") and lines[-1].startswith("verdict: ")
    data = json.loads(out.read_text())
    assert data["network"]["windows"] >= 3 and len(data["windows"]) >= 6 and data["verdict"] == lines[-1]
