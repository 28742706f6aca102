"""Negative seeds are refused (issue 28 item 5): Python's random seeds with the absolute value, so --seed -1 gave
exactly the run of --seed 1."""
import argparse
import random

import pytest

from conftest import ROOT, cli_here
from hwnas.app.args import seed_int
from hwnas.app.cli import build_parser
from hwnas.core.errors import SearchError
from hwnas.search import run_search

LUT = str(ROOT / "luts" / "amd-epyc-2c_ort-cpu_demo.json")


def test_why_a_negative_seed_is_refused():
    assert random.Random(-1).random() == random.Random(1).random()


def test_search_and_sample_refuse_a_negative_seed(tmp_path):
    r = cli_here("search", "--lut", LUT, "--seed", "-1", "--out", str(tmp_path / "r"))
    assert r.returncode == 2 and "--seed: expected a whole number >= 0, got -1 (a negative seed would give the run " \
                                 "of seed 1)" in r.stderr, r.stderr
    assert not (tmp_path / "r").exists()
    assert cli_here("sample", "--space", "demo", "--seed", "-3").returncode == 2
    with pytest.raises(SearchError, match="--seed must be an integer >= 0, got -1"):
        run_search(LUT, tmp_path / "lib", seed=-1, population=4, generations=1, progress=False)
    assert not (tmp_path / "lib").exists()


def _seed_actions(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                for a in sub._actions:
                    if any("seed" in o for o in a.option_strings):
                        yield name, a


def test_every_seed_flag_refuses_negatives():
    found = list(_seed_actions(build_parser()))
    assert len(found) >= 8
    assert [(name, a.option_strings) for name, a in found if a.type is not seed_int] == []
    assert seed_int("0") == 0 and seed_int("12") == 12
