from dataclasses import asdict

import pytest
import torch

from hwnas.evaluate import CachedEvaluator, create_evaluator
from hwnas.evaluate.data import load_data
from hwnas.evaluate.scoring import batchnorms
from hwnas.evaluate.mbv3_supernet import MBv3Supernet
from hwnas.evaluate.supernet import (CheckpointError, SupernetConfig, evaluate_subnet,
                                     load_supernet, recalibrate_bn, train_supernet)


def test_extract_equals_the_supernet_forward(demo):
    torch.manual_seed(0)
    net = MBv3Supernet(demo)
    splits = load_data("digits")
    for seed in range(4):
        arch = demo.sample(seed)
        recalibrate_bn(net, lambda x: net(x, arch), splits, arch.resolution, 3, batches=2)
        net.eval()
        x = splits.tensors("val", arch.resolution, 3)[0][:32]
        sub = net.extract(arch).eval()
        assert [d.key for d in sub.descs] == [d.key for d in arch.layers()]
        with torch.no_grad():
            assert torch.allclose(net(x, arch), sub(x), atol=1e-6, rtol=0)
    big = net.extract(demo.largest())
    assert sum(p.numel() for p in big.parameters()) == sum(d.params for d in demo.largest().layers())


def test_smaller_kernel_is_the_centre_of_the_larger(demo):
    net = MBv3Supernet(demo)
    arch = demo.smallest()  # kernel 3 everywhere; the supernet holds 5x5
    block = net.extract(arch).blocks[2]
    big = net.stages[0][0].block.depthwise[0].weight
    mid = block.depthwise[0].weight.shape[0]
    assert torch.equal(block.depthwise[0].weight, big[:mid, :, 1:4, 1:4])


def test_bn_recalibration_changes_running_stats(demo):
    net = MBv3Supernet(demo)
    splits = load_data("digits")
    arch = demo.sample(3)
    before = [bn.running_mean.clone() for bn in batchnorms(net)]
    recalibrate_bn(net, lambda x: net(x, arch), splits, arch.resolution, 3, batches=2)
    after = [bn.running_mean for bn in batchnorms(net)]
    assert any(not torch.equal(a, b) for a, b in zip(before, after))
    stem_bn = net.stem[1]
    assert int(stem_bn.num_batches_tracked) == 2 and stem_bn.momentum == 0.1  # momentum restored
    # the stats are the subnet's own: recalibrating twice with the same seed gives the same numbers
    snap = [bn.running_var.clone() for bn in batchnorms(net)]
    recalibrate_bn(net, lambda x: net(x, arch), splits, arch.resolution, 3, batches=2)
    assert all(torch.equal(a, b.running_var) for a, b in zip(snap, batchnorms(net)))


def test_training_learns_and_checkpoints(tiny_supernet, demo, tiny_data):
    out, cfg, report = tiny_supernet
    assert report.epochs_done == 3 and len(report.history) == 3
    assert report.history[-1]["loss"] < report.history[0]["loss"]
    net, blob = load_supernet(out)
    assert blob["epochs_done"] == 3 and blob["config"]["data"] == tiny_data
    acc = evaluate_subnet(net, demo.largest(), load_data(tiny_data))
    assert acc > 20.0  # 10 classes: chance is 10 %


def test_training_is_seeded_and_refuses_to_overwrite(tmp_path, demo, tiny_supernet):
    out, cfg, _ = tiny_supernet
    again = tmp_path / "again.pt"
    train_supernet(demo, again, cfg, device="cpu", progress=False)
    a, b = torch.load(again, weights_only=True)["state"], torch.load(out, weights_only=True)["state"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # same seed, same config: same weights
    with pytest.raises(CheckpointError, match="already exists; add --resume"):
        train_supernet(demo, again, cfg, device="cpu", progress=False)
    with pytest.raises(CheckpointError, match="other settings"):
        train_supernet(demo, again, SupernetConfig(**{**cfg.__dict__, "lr": 0.01}), device="cpu", progress=False, resume=True)


def test_resume_after_partial_training(tmp_path, demo, tiny_data, tiny_supernet):
    out_full, cfg, _ = tiny_supernet
    part = tmp_path / "part.pt"
    train_supernet(demo, part, cfg, device="cpu", progress=False, stop_after=1)  # as if killed after epoch 1
    assert torch.load(part, weights_only=True)["epochs_done"] == 1
    report = train_supernet(demo, part, cfg, device="cpu", progress=False, resume=True)
    assert report.resumed_from == 1
    a, b = torch.load(part, weights_only=True)["state"], torch.load(out_full, weights_only=True)["state"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_supernet_evaluator_is_cached_and_deterministic(tiny_supernet, demo):
    out, _, _ = tiny_supernet
    ev = CachedEvaluator(create_evaluator("supernet", checkpoint=str(out)))
    archs = [demo.sample(i) for i in range(3)]
    first = ev.evaluate(archs)
    assert all(0 <= a <= 100 for a in first)
    assert ev.evaluate(archs) == first and ev.misses == 3 and ev.hits == 3
    assert create_evaluator("supernet", checkpoint=str(out)).evaluate(archs) == first


def test_checkpoint_errors(tmp_path, tiny_supernet, mbv3):
    out, _, _ = tiny_supernet
    with pytest.raises(CheckpointError, match="does not exist"):
        create_evaluator("supernet", checkpoint=str(tmp_path / "none.pt"))
    cut = tmp_path / "cut.pt"
    cut.write_bytes(out.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="not a readable supernet checkpoint"):
        load_supernet(cut)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not an hwnas supernet checkpoint"):
        load_supernet(foreign)
    ev = create_evaluator("supernet", checkpoint=str(out))
    with pytest.raises(CheckpointError, match="differs from the supernet's space"):
        ev.evaluate([mbv3.sample(0)])


def test_an_older_checkpoint_without_data_limit_still_resumes(tmp_path, demo, tiny_supernet):
    """Checkpoints written before ``data_limit`` existed lack the key: it counts at its default."""
    out_full, cfg, _ = tiny_supernet
    old = tmp_path / "old.pt"
    blob = torch.load(out_full, weights_only=True)
    blob["config"].pop("data_limit")
    torch.save(blob, old)
    longer = SupernetConfig(**{**asdict(cfg), "epochs": 4})
    with pytest.raises(CheckpointError, match="other settings"):  # a real difference is still refused
        train_supernet(demo, old, longer, device="cpu", progress=False, resume=True)
    report = train_supernet(demo, old, cfg, device="cpu", progress=False, resume=True)
    assert report.resumed_from == 3 and report.epochs_done == 3


def test_data_limit_trains_on_fewer_images_and_the_evaluator_scores_on_the_same(tmp_path, demo, tiny_data):
    out = tmp_path / "limited.pt"
    cfg = SupernetConfig(data=tiny_data, data_limit=5, epochs=1, batch_size=8, random_subnets=0)
    train_supernet(demo, out, cfg, device="cpu", progress=False)
    blob = torch.load(out, weights_only=True)
    assert blob["config"]["data_limit"] == 5 and blob["data"]["data_limit"] == 5
    ev = create_evaluator("supernet", checkpoint=str(out))
    assert ev.config()["data_limit"] == 5
    assert 0 <= ev.evaluate([demo.smallest()])[0] <= 100
    with pytest.raises(CheckpointError, match="data_limit must be a whole number >= 1"):
        SupernetConfig(data=tiny_data, data_limit=0)
