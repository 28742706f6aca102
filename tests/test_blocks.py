import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from hwnas.spaces.blocks import LayerDesc, build_model, make_divisible


def test_make_divisible_rounds_to_multiples_of_eight():
    assert make_divisible(16 * 3) == 48
    assert make_divisible(24 * 4.5) == 112  # 108 -> 112
    assert make_divisible(10) == 16  # never below 90 % of the value
    assert make_divisible(3) == 8


@pytest.mark.parametrize("desc", [
    LayerDesc("conv", 3, 16, 224, kernel=3, stride=2, act="hswish"),
    LayerDesc("mbconv", 16, 16, 112, kernel=3, stride=1, mid=16, act="relu"),
    LayerDesc("mbconv", 24, 40, 56, kernel=5, stride=2, mid=144, se=True, act="relu"),
    LayerDesc("mbconv", 112, 112, 14, kernel=7, stride=1, mid=672, se=True, act="hswish"),
    LayerDesc("head", 960, 1000, 7, mid=1280, act="hswish"),
])
def test_descriptor_key_round_trip_shape_params(desc):
    assert LayerDesc.from_key(desc.key) == desc
    module = desc.build().eval()
    with torch.no_grad():
        y = module(torch.randn(*desc.input_shape))
    assert tuple(y.shape) == desc.output_shape
    assert sum(p.numel() for p in module.parameters()) == desc.params


def test_descriptor_rejects_bad_fields():
    with pytest.raises(ValueError, match="unknown layer op"):
        LayerDesc("pool", 3, 3, 8)
    with pytest.raises(ValueError, match="unknown activation"):
        LayerDesc("conv", 3, 3, 8, act="gelu")
    with pytest.raises(ValueError, match="mid >= 1"):
        LayerDesc("mbconv", 8, 8, 8, kernel=3)
    with pytest.raises(ValueError, match="not a layer key"):
        LayerDesc.from_key("mbconv:r8:x9:relu")
    with pytest.raises(ValueError, match="not a canonical"):
        LayerDesc.from_key("conv:i3:r8:o8:k3:s1:relu")


def test_residual_only_when_shapes_match():
    assert LayerDesc("mbconv", 24, 24, 56, kernel=3, stride=1, mid=72).residual
    assert not LayerDesc("mbconv", 24, 40, 56, kernel=3, stride=1, mid=72).residual
    assert not LayerDesc("mbconv", 24, 24, 56, kernel=3, stride=2, mid=72).residual


def test_random_224_arch_builds_and_runs_in_eval(mbv3):
    arch = mbv3.sample(7)
    arch = type(arch)(mbv3, 224, arch.width, arch.kernels, arch.expands)
    model = build_model(arch).eval()
    with torch.no_grad():
        y = model(torch.randn(2, 3, 224, 224))
    assert y.shape == (2, 1000) and torch.isfinite(y).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_model_params_equal_descriptor_sum(mbv3, demo, seed):
    for space in (mbv3, demo):
        arch = space.sample(seed)
        model = build_model(arch)
        assert sum(p.numel() for p in model.parameters()) == sum(d.params for d in arch.layers())
        # the model is made of exactly the descriptors' modules, in order
        assert [type(m) for m in model.blocks] == [type(d.build()) for d in arch.layers()]


@pytest.mark.parametrize("which", ["smallest", "largest", 3])
def test_macs_match_torch_flop_counter(mbv3, which):
    arch = getattr(mbv3, which)() if isinstance(which, str) else mbv3.sample(which)
    model = build_model(arch).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.randn(1, 3, arch.resolution, arch.resolution))
    assert counter.get_total_flops() == 2 * sum(d.macs for d in arch.layers())


def test_mbv3_largest_matches_known_size(mbv3):
    # OFA's MobileNetV3 w1.0 supernet (= its largest subnet: d=4, k=7, e=6) has ~7.7M params
    params = sum(d.params for d in mbv3.largest().layers())
    assert 7.5e6 < params < 7.9e6
