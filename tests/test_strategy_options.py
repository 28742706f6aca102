"""--strategy-option reaches the strategy; unknown or mistyped keys are refused before anything is written."""
import pytest

from hwnas.core.errors import SearchError
from hwnas.search.strategies import create_strategy, list_strategies, strategy_options

from conftest import cli_here


def test_each_strategy_lists_its_own_options():
    assert {"nsga2", "evolution", "random"} <= set(list_strategies())
    assert strategy_options("nsga2") == {"mutate_prob": None, "crossover_prob": 0.9}
    assert strategy_options("evolution") == {"mutate_prob": None, "sample_size": 10}


def test_options_reach_the_strategy_and_bad_ones_are_refused(demo):
    s = create_strategy("evolution", demo, population=8, seed=1, sample_size=3, mutate_prob=0.2)
    assert s.sample_size == 3 and s.mutate_prob == 0.2
    with pytest.raises(SearchError, match=r"takes no option\(s\) \['sample_sise'\]; its options: mutate_prob"):
        create_strategy("evolution", demo, population=8, sample_sise=3)
    with pytest.raises(SearchError, match="crossover_prob=1.5 is a probability"):
        create_strategy("nsga2", demo, population=8, crossover_prob=1.5)
    with pytest.raises(SearchError, match="sample_size=2.5 must be a whole number"):
        create_strategy("evolution", demo, population=8, sample_size=2.5)
    with pytest.raises(SearchError, match="mutate_prob='high' must be a finite number"):
        create_strategy("nsga2", demo, population=8, mutate_prob="high")
    with pytest.raises(SearchError, match="unknown strategy 'annealing'.*hwnas.strategies"):
        create_strategy("annealing", demo, population=8)


def test_search_cli_passes_strategy_options_and_refuses_a_typo_before_writing(demo_lut_path, tmp_path):
    out = tmp_path / "run"
    common = ["search", "--lut", str(demo_lut_path), "--evaluator", "proxy:synflow", "--population", "4",
              "--generations", "1", "--strategy", "evolution"]
    r = cli_here(*common, "--strategy-option", "sample_sise=3", "--out", str(out))
    assert r.returncode == 2 and "its options: mutate_prob" in r.stderr and not out.exists(), r.stderr
    r = cli_here(*common, "--strategy-option", "sample_size", "--out", str(out))
    assert r.returncode == 2 and "--strategy-option takes KEY=VALUE" in r.stderr
    r = cli_here(*common, "--strategy-option", "sample_size=2", "--out", str(out))
    assert r.returncode in (0, 1), r.stderr
    from hwnas.search.store import RunStore

    store = RunStore(out / "run.sqlite", readonly=True)
    try:
        assert store.get_meta("config")["strategy_options"] == {"sample_size": 2}  # recorded: resume must match
    finally:
        store.close()


def test_a_strategy_plugin_is_found_through_a_real_entry_point(tmp_path, monkeypatch, demo):
    """A tiny installed distribution (dist-info with entry_points.txt) registering a strategy."""
    import sys
    import textwrap

    (tmp_path / "hwnas_fake_strategy.py").write_text(textwrap.dedent('''
        from hwnas.search.strategies import RandomSearch

        class Lucky(RandomSearch):
            def __init__(self, space, population=50, seed=0, mutate_prob=None, luck=7):
                super().__init__(space, population, seed, mutate_prob)
                self.luck = luck
    '''))
    dist = tmp_path / "hwnas_fake_strategy-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hwnas-fake-strategy\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[hwnas.strategies]\nlucky = hwnas_fake_strategy:Lucky\n"
                                           "nsga2 = hwnas_fake_strategy:Lucky\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert "lucky" in list_strategies() and "hwnas_fake_strategy" not in sys.modules  # listed, not imported
        s = create_strategy("lucky", demo, population=4, seed=0, luck=9)
        assert s.luck == 9 and s.name == "lucky" and len(s.ask()) == 4
        assert strategy_options("lucky") == {"mutate_prob": None, "luck": 7}
        assert type(create_strategy("nsga2", demo, population=4)).__name__ == "NSGA2"  # no shadowing built-ins
    finally:
        sys.modules.pop("hwnas_fake_strategy", None)
