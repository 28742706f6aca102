"""Evaluators against NAS-Bench-201's public accuracies (hwnas.bench.nb201) on a fixed sample: the figures
are pinned, so a change to how hwnas builds cells or computes a proxy shows here. The whole benchmark
(1,000 networks) is tools/bench_nb201_proxies.py; its result is in docs/evaluators.md."""
import pytest

from hwnas.bench.nb201 import read_ground_truth, run_nb201_bench, shared_data_dir

pytestmark = pytest.mark.skipif(not (shared_data_dir() / "nb201_accuracy_nats.csv.gz").is_file(),
                                reason="shared/data (the NAS-Bench-201 ground truth) is not beside this checkout")


@pytest.fixture(scope="module")
def bench():
    return run_nb201_bench(30, seed=0)


def test_ground_truth_is_one_network_per_unique_function():
    truth = read_ground_truth()
    assert len(truth) == 6466  # NAS-Bench-201's unique networks
    some = next(iter(truth.values()))
    assert set(some.accuracy) == {"cifar10", "cifar100", "imagenet16-120"} and len(some.latency_ms) == 7


def test_pinned_figures_on_30_networks(bench):
    rho = {r.evaluator: r.spearman for r in bench.rows}
    assert rho["params"]["cifar10"] == pytest.approx(0.8615, abs=2e-3)
    assert rho["macs"]["cifar10"] == pytest.approx(0.8615, abs=2e-3)  # one op's params and MACs scale together
    assert rho["proxy:synflow"]["cifar10"] == pytest.approx(0.8385, abs=5e-3)
    assert rho["proxy:meco"]["cifar10"] == pytest.approx(0.9190, abs=5e-3)
    assert rho["proxy:vote proxies=meco,macs"]["cifar10"] == pytest.approx(0.9182, abs=5e-3)


def test_meco_beats_size_overall_and_within_latency_bins(bench):
    rows = {r.evaluator: r for r in bench.rows}
    for data in ("cifar10", "cifar100", "imagenet16-120"):
        assert rows["proxy:meco"].spearman[data] > max(rows["params"].spearman[data], rows["macs"].spearman[data])
    assert rows["proxy:meco"].near_mean > rows["params"].near_mean + 0.05
    vote = rows["proxy:vote proxies=meco,macs"]  # MeCo voted with size: still more than size, in bins too
    assert vote.spearman["cifar10"] > rows["macs"].spearman["cifar10"] + 0.05
    assert vote.near_mean > rows["macs"].near_mean + 0.05
    assert all(p >= 10 for p in bench.pairs_near_latency.values())
