"""hwnas/bench/reference.py: the benchmarks' reference training, saved as it comes, and its noise ceiling."""
import json
import random

import pytest

from hwnas.core.errors import InputError
from hwnas.bench.reference import Recipe, agreement, train_reference


def test_agreement_of_two_seeds(demo):
    archs = demo.sample_distinct(6, random.Random(0))
    same = {0: [80.0, 81.0, 82.0, 83.0, 84.0, 85.0], 1: [80.5, 81.5, 82.5, 83.5, 84.5, 85.5]}
    ag = agreement(same, archs)
    assert ag.kendall_tau == pytest.approx(1.0) and ag.seed_noise_sd == pytest.approx(0.0)
    flipped = {0: same[0], 1: same[0][::-1]}
    ag = agreement(flipped, archs)
    assert ag.kendall_tau == pytest.approx(-1.0) and ag.seed_noise_sd > 1.0 and ag.arch_spread_sd == 0.0
    with pytest.raises(InputError, match="two or more seeds"):
        agreement({0: same[0]}, archs)


def test_recipe_is_checked_and_named_by_its_settings():
    assert Recipe().digest == Recipe().digest != Recipe(epochs=13).digest
    with pytest.raises(InputError, match="part must be val or test"):
        Recipe(part="train")
    assert "no early stopping" in Recipe().describe() and "scored on test" in Recipe().describe()


def test_reference_trains_each_arch_and_seed_once_and_resumes_from_its_file(demo, tiny_data, tmp_path):
    archs = demo.sample_distinct(2, random.Random(1))
    import torch

    recipe = Recipe(data=tiny_data, data_limit=None, epochs=1, batch_size=32)
    threads = torch.get_num_threads()
    runs, cpu_s = train_reference(archs, recipe, [0, 1], workers=1, cache=tmp_path, progress=False)
    assert torch.get_num_threads() == threads  # in this process: its thread count is left alone
    assert set(runs) == {0, 1} and all(len(v) == 2 and all(0 <= x <= 100 for x in v) for v in runs.values())
    assert cpu_s > 0
    saved = tmp_path / f"reference-{recipe.digest}.json"
    blob = json.loads(saved.read_text())
    assert len(blob["scores"]) == 4 and blob["recipe"]["epochs"] == 1
    # the same seed trains the same weights: a third seed trains only its own two runs, the rest is read back
    before = saved.stat().st_mtime_ns
    again, _ = train_reference(archs, recipe, [0, 1], workers=1, cache=tmp_path, progress=False)
    assert again == runs and saved.stat().st_mtime_ns == before
    more, _ = train_reference(archs, recipe, [0, 1, 2], workers=1, cache=tmp_path, progress=False)
    assert more[0] == runs[0] and len(json.loads(saved.read_text())["scores"]) == 6


def test_two_benchmarks_sharing_a_workdir_keep_each_others_trainings(tmp_path):
    from hwnas.bench.reference import save

    path = tmp_path / "reference-x.json"
    a = {"recipe": {}, "scores": {"0:a": 80.0}, "cpu_s": {"0:a": 1.0}}
    b = {"recipe": {}, "scores": {"0:b": 81.0}, "cpu_s": {"0:b": 2.0}}  # read the file before a wrote
    save(path, a)
    save(path, b)
    assert json.loads(path.read_text())["scores"] == {"0:a": 80.0, "0:b": 81.0}
