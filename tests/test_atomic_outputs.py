"""Every file hwnas writes goes through the atomic writer (issue 28 item 4): on a full disk (a real one, a 4 KB
tmpfs) the old file is left whole and no temporary file is left beside it; a plain write truncated it first."""
import pytest

from conftest import cli_here
from fullfs import fill, small_disk


def _left(folder):
    return sorted(p.name for p in folder.iterdir())


def test_sample_out_on_a_full_disk_leaves_the_old_file(tmp_path):
    with small_disk(tmp_path / "disk", "4k"):
        old = fill(tmp_path / "disk", "archs.jsonl")
        r = cli_here("sample", "--space", "demo", "--n", "50", "--out", str(old))
        assert r.returncode != 0 and "wrote" not in r.stdout, r
        assert old.read_bytes() == b"the old contents\n" and _left(tmp_path / "disk") == ["archs.jsonl"]


def test_an_accuracy_predictor_saved_on_a_full_disk_leaves_the_old_file(tmp_path, demo):
    from hwnas.evaluate.predictor import AccuracyPredictor

    with small_disk(tmp_path / "disk", "4k"):
        old = fill(tmp_path / "disk", "predictor.pt")
        with pytest.raises(OSError, match="No space left on device"):
            AccuracyPredictor(demo, hidden=16, layers=2).save(old)
        assert old.read_bytes() == b"the old contents\n" and _left(tmp_path / "disk") == ["predictor.pt"]


def test_pareto_png_drawn_on_a_full_disk_leaves_the_old_file(tmp_path):
    pytest.importorskip("matplotlib")
    from hwnas.finalize.report import plot_front

    with small_disk(tmp_path / "disk", "4k"):
        old = fill(tmp_path / "disk", "pareto.png")
        with pytest.raises(OSError, match="No space left on device"):
            plot_front(old, [], [], 1.0, title="full disk")
        assert old.read_bytes() == b"the old contents\n" and _left(tmp_path / "disk") == ["pareto.png"]


def test_the_outputs_still_read_back(tmp_path, demo):
    """The atomic writes write what the plain ones did."""
    import torch

    from hwnas.evaluate.predictor import AccuracyPredictor
    from hwnas.finalize.report import plot_front

    r = cli_here("sample", "--space", "demo", "--n", "2", "--out", str(tmp_path / "a.jsonl"))
    assert r.returncode == 0 and len((tmp_path / "a.jsonl").read_text().splitlines()) == 2
    AccuracyPredictor(demo, hidden=16, layers=2).save(tmp_path / "p.pt")
    assert AccuracyPredictor.load(tmp_path / "p.pt").hidden == 16
    assert torch.load(tmp_path / "p.pt", weights_only=False)["layers"] == 2
    if plot_front(tmp_path / "f.png", [], [], 1.0) is None:
        assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
