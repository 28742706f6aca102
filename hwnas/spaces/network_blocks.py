"""The network kind's block types beside the built-in ones: depthwise-separable, ResNet bottleneck,
MobileViT-style attention, and the channel concatenation of dense connections.

Each is a :class:`~hwnas.spaces.blocks.BlockType` registered by name in ``hwnas.spaces.blocks.BLOCK_TYPES``
(lazily: this module is imported the first time a descriptor names one), so a LUT key such as
``attention:r7:i64:o64:k3:s1:m64:h2:hswish`` rebuilds the same module in any measuring process.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from hwnas.spaces.blocks import ACTIVATIONS, BlockType, ConvBNAct, LayerDesc

MLP_RATIO = 2  # an attention block's MLP is 2x its token dimension wide (MobileViT uses 2)


# -- dwsep ---------------------------------------------------------------------
def _dwsep(d: LayerDesc) -> nn.Module:
    return nn.Sequential(ConvBNAct(d.cin, d.cin, d.kernel, d.stride, d.act, groups=d.cin),
                         ConvBNAct(d.cin, d.cout, 1, 1, d.act))


DWSEP = BlockType(build=_dwsep,
                  macs=lambda d: (d.kernel**2 * d.cin + d.cin * d.cout) * d.out_res**2,
                  params=lambda d: d.kernel**2 * d.cin + 2 * d.cin + d.cin * d.cout + 2 * d.cout)


# -- bottleneck ----------------------------------------------------------------
class Bottleneck(nn.Module):
    """ResNet's bottleneck: 1x1 down to ``mid``, kxk (the stride), 1x1 up to ``cout``, its own shortcut
    (identity, or a strided 1x1 projection where the shape changes), the activation after the sum."""

    def __init__(self, d: LayerDesc):
        super().__init__()
        self.body = nn.Sequential(ConvBNAct(d.cin, d.mid, 1, 1, d.act), ConvBNAct(d.mid, d.mid, d.kernel, d.stride, d.act),
                                  ConvBNAct(d.mid, d.cout, 1, 1, None))
        self.shortcut = nn.Identity() if _bottleneck_identity(d) else ConvBNAct(d.cin, d.cout, 1, d.stride, None)
        self.act = ACTIVATIONS[d.act]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


def _bottleneck_identity(d: LayerDesc) -> bool:
    return d.stride == 1 and d.cin == d.cout


def _bottleneck_macs(d: LayerDesc) -> int:
    o2 = d.out_res**2
    macs = d.cin * d.mid * d.res**2 + d.kernel**2 * d.mid * d.mid * o2 + d.mid * d.cout * o2
    return macs + (0 if _bottleneck_identity(d) else d.cin * d.cout * o2)


def _bottleneck_params(d: LayerDesc) -> int:
    n = d.cin * d.mid + 2 * d.mid + d.kernel**2 * d.mid * d.mid + 2 * d.mid + d.mid * d.cout + 2 * d.cout
    return n + (0 if _bottleneck_identity(d) else d.cin * d.cout + 2 * d.cout)


BOTTLENECK = BlockType(build=Bottleneck, macs=_bottleneck_macs, params=_bottleneck_params, with_mid=True)


# -- attention -----------------------------------------------------------------
class Attention(nn.Module):
    """A MobileViT-style block: a depthwise kxk convolution (local, carrying the stride) and a 1x1 to ``mid``
    channels; then every position of the feature map is a token of ``mid`` dimensions, through one transformer
    layer (pre-norm multi-head self-attention with ``heads`` heads, then an MLP of ``MLP_RATIO`` x ``mid``, both
    residual); folded back, a 1x1 to ``cout``; the block's input is added where the shape allows.

    Written out (linear q/k/v, matmul, softmax) rather than as ``nn.MultiheadAttention`` so that its ONNX
    export is plain operators every runtime takes, and so that its cost is what a LUT entry times: attention
    grows with the square of the positions (``(res/stride)^4``), which is why it is timed whole."""

    def __init__(self, d: LayerDesc):
        super().__init__()
        self.heads, self.dim = d.heads, d.mid
        self.scale = 1.0 / math.sqrt(d.mid // d.heads)
        self.local = ConvBNAct(d.cin, d.cin, d.kernel, d.stride, d.act, groups=d.cin)
        self.to_tokens = nn.Conv2d(d.cin, d.mid, 1, bias=False)
        self.norm1, self.norm2 = nn.LayerNorm(d.mid), nn.LayerNorm(d.mid)
        self.qkv = nn.Linear(d.mid, 3 * d.mid)
        self.proj = nn.Linear(d.mid, d.mid)
        self.mlp = nn.Sequential(nn.Linear(d.mid, MLP_RATIO * d.mid), ACTIVATIONS[d.act](),
                                 nn.Linear(MLP_RATIO * d.mid, d.mid))
        self.fold = ConvBNAct(d.mid, d.cout, 1, 1, d.act)
        self.residual = d.stride == 1 and d.cin == d.cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.to_tokens(self.local(x))
        b, c, h, w = y.shape
        t = y.flatten(2).transpose(1, 2)  # [b, h*w, c]
        q, k, v = self.qkv(self.norm1(t)).reshape(b, h * w, 3, self.heads, self.dim // self.heads) \
            .permute(2, 0, 3, 1, 4).unbind(0)
        att = torch.softmax(q @ k.transpose(-2, -1) * self.scale, dim=-1)
        t = t + self.proj((att @ v).transpose(1, 2).reshape(b, h * w, self.dim))
        t = t + self.mlp(self.norm2(t))
        out = self.fold(t.transpose(1, 2).reshape(b, c, h, w))
        return x + out if self.residual else out


def _attention_macs(d: LayerDesc) -> int:
    n, m = d.out_res**2, d.mid
    return (d.kernel**2 * d.cin * n + d.cin * m * n          # local depthwise, to tokens
            + n * 4 * m * m + 2 * n * n * m                    # q, k, v, projection; q k^T and att v
            + n * 2 * MLP_RATIO * m * m + m * d.cout * n)      # MLP, fold


def _attention_params(d: LayerDesc) -> int:
    m, r = d.mid, MLP_RATIO
    return (d.kernel**2 * d.cin + 2 * d.cin + d.cin * m + 4 * m     # local (+BN), to tokens, two LayerNorms
            + 3 * m * m + 3 * m + m * m + m                         # qkv, projection
            + m * r * m + r * m + r * m * m + m                     # MLP
            + m * d.cout + 2 * d.cout)                              # fold (+BN)


def _attention_elems(d: LayerDesc) -> int:
    n = d.out_res**2
    return d.cin * d.res**2 + d.heads * n * n + MLP_RATIO * d.mid * n


ATTENTION = BlockType(build=Attention, macs=_attention_macs, params=_attention_params, with_mid=True,
                      with_heads=True, activation_elems=_attention_elems)


# -- concat --------------------------------------------------------------------
class ConcatSelf(nn.Module):
    """What a dense connection's concatenation costs: ``cin`` channels gathered into one tensor (timed alone,
    the input's two halves are concatenated back: the same bytes moved)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = x.shape[1] // 2
        return torch.cat([x[:, half:], x[:, :half]], 1)


CONCAT = BlockType(build=lambda d: ConcatSelf(), macs=lambda d: 0, params=lambda d: 0, strided=False)
