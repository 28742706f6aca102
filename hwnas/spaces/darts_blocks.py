"""The DARTS kind's block types: its separable and dilated convolutions, max pooling, the factorized
reduction (a strided skip, and the preprocessing of a cell after a reduction), and the classifier (global
pool, linear). Registered by name in ``hwnas.spaces.blocks.BLOCK_TYPES``; DARTS's average pooling and
ReLU-conv-BN are the built-in ``avgpool`` and ``rcb``.
"""
from __future__ import annotations

import torch
from torch import nn

from hwnas.spaces.blocks import BlockType, LayerDesc


def _dw_pw(cin: int, cout: int, k: int, stride: int, dilation: int) -> list[nn.Module]:
    pad = dilation * (k // 2)
    return [nn.ReLU(), nn.Conv2d(cin, cin, k, stride, pad, dilation=dilation, groups=cin, bias=False),
            nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout)]


def _sepconv(d: LayerDesc) -> nn.Module:
    """DARTS's sep_conv_kxk: (ReLU, depthwise kxk, pointwise, BN) twice, the stride in the first."""
    return nn.Sequential(*_dw_pw(d.cin, d.cin, d.kernel, d.stride, 1), *_dw_pw(d.cin, d.cout, d.kernel, 1, 1))


def _sep_macs(d: LayerDesc) -> int:
    o2 = d.out_res**2
    return (d.kernel**2 * d.cin + d.cin * d.cin + d.kernel**2 * d.cin + d.cin * d.cout) * o2


SEPCONV = BlockType(build=_sepconv, macs=_sep_macs,
                    params=lambda d: 2 * d.kernel**2 * d.cin + d.cin * d.cin + 2 * d.cin + d.cin * d.cout + 2 * d.cout)
DILCONV = BlockType(build=lambda d: nn.Sequential(*_dw_pw(d.cin, d.cout, d.kernel, d.stride, 2)),
                    macs=lambda d: (d.kernel**2 * d.cin + d.cin * d.cout) * d.out_res**2,
                    params=lambda d: d.kernel**2 * d.cin + d.cin * d.cout + 2 * d.cout)
MAXPOOL = BlockType(build=lambda d: nn.MaxPool2d(d.kernel, d.stride, d.kernel // 2),
                    macs=lambda d: 0, params=lambda d: 0)


class FactorizedReduce(nn.Module):
    """DARTS's stride-2 skip: ReLU, two 1x1 stride-2 convolutions (the second shifted by one pixel), their
    outputs concatenated to ``cout`` channels, BN."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.relu = nn.ReLU()
        self.a = nn.Conv2d(cin, cout // 2, 1, 2, bias=False)
        self.b = nn.Conv2d(cin, cout - cout // 2, 1, 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = nn.functional.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))  # same output size at odd resolutions too
        return self.bn(torch.cat([self.a(x), self.b(shifted)], 1))


FACTREDUCE = BlockType(build=lambda d: FactorizedReduce(d.cin, d.cout),
                       macs=lambda d: d.cin * d.cout * d.out_res**2,
                       params=lambda d: d.cin * d.cout + 2 * d.cout)
GAPHEAD = BlockType(build=lambda d: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(d.cin, d.cout)),
                    macs=lambda d: d.cin * d.cout, params=lambda d: d.cin * d.cout + d.cout, strided=False, head=True)
