"""ResNet-9 of the corrective unlearning papers' code (drimpossible/corrective-unlearning-bench, if-loops/rem).

conv1 3->64 (3x3) -> conv2 64->128 (5x5, stride 2, padding 2, no pool) -> res1 (two 128 blocks) ->
conv3 128->256 then 2x2 max-pool -> res2 (two 256 blocks) -> conv4 256->128 (3x3, unpadded, no pool) ->
global max-pool -> linear without bias. Every conv has a bias and is followed by batch norm and CELU(0.075).
2,276,224 parameters for 10 classes on 3-channel images; inputs of at least 11x11 pixels (28 px: MNIST,
32 px: CIFAR). For 8x8 images (digits) use `cnn_small`.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from corrective.errors import UserError
from corrective.models.masks import CapacityMask, context
from corrective.models.registry import register_model

MIN_SIZE = 11  # conv2 (stride 2) and the 2x2 pool leave >= 3x3 for the unpadded 3x3 conv4
# The masks' pattern index per masked place: the res1 output reuses conv2's pattern and the res2 output
# conv3's, as REM's code pairs them (one example-tied mask per width).
MASK_PATTERNS = (0, 1, 1, 2, 2, 3)


def conv_bn(
    c_in: int,
    c_out: int,
    kernel: int = 3,
    stride: int = 1,
    padding: int = 1,
    *,
    bias: bool = False,
    pool: bool = False,
) -> nn.Sequential:
    """Conv (`bias`: with a bias), batch norm, CELU(0.075), then optionally a 2x2 max-pool."""
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=bias),
        nn.BatchNorm2d(c_out),
        nn.CELU(alpha=0.075),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def conv_out(block: nn.Module) -> int:
    """Output channels of a `conv_bn` block (its first module is the convolution)."""
    conv = next(iter(block.children()))
    assert isinstance(conv, nn.Conv2d)
    return conv.out_channels


class Residual(nn.Module):
    """x + f(x) with f two 3x3 conv-BN-CELU blocks (with bias) at constant width."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.branch = nn.Sequential(conv_bn(c, c, bias=True), conv_bn(c, c, bias=True))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.branch(x)


@register_model(name="resnet9")
class ResNet9(nn.Module):
    """The papers' ResNet-9 (see the module docstring).

    Capacity masks (`models.masks`) sit after conv1, conv2, the res1 output, conv3 (after its pool), the
    res2 output and conv4, never inside a residual branch; with the default `p_fixed = 1` they do nothing.
    `channels` (c1, c2, c3, c4) overrides `width`.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        width: float = 1.0,
        p_fixed: float = 1.0,
        p_mem: float = 0.0,
        channels: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.num_classes, self.in_channels, self.p_fixed = num_classes, in_channels, p_fixed
        c1, c2, c3, c4 = channels or [max(1, int(round(c * width))) for c in (64, 128, 256, 128)]
        self.conv1 = conv_bn(in_channels, c1, bias=True)
        self.conv2 = conv_bn(c1, c2, 5, stride=2, padding=2, bias=True)
        self.res1 = Residual(c2)
        self.conv3 = conv_bn(c2, c3, bias=True, pool=True)
        self.res2 = Residual(c3)
        self.conv4 = conv_bn(c3, c4, padding=0, bias=True)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(c4, num_classes, bias=False)
        widths = (c1, c2, c2, c3, c3, c4)
        places = zip(widths, MASK_PATTERNS, strict=True)
        self.masks = nn.ModuleList(CapacityMask(c, p_fixed, p_mem, i) for c, i in places)

    def forward(self, x: Tensor, ids: Tensor | None = None, mode: str | None = None) -> Tensor:
        if min(x.shape[-2:]) < MIN_SIZE:
            h, w = x.shape[-2:]
            raise UserError(
                f"resnet9 needs images of at least {MIN_SIZE}x{MIN_SIZE} pixels (its last conv is "
                f"unpadded), got {h}x{w}; use --model cnn_small for small images such as digits"
            )
        ctx = context(mode, ids)
        layers = (self.conv1, self.conv2, self.res1, self.conv3, self.res2, self.conv4)
        for layer, mask in zip(layers, self.masks, strict=True):
            x = mask(layer(x), ctx)
        return self.fc(self.pool(x).flatten(1))

    def widened(self) -> ResNet9:
        """The same network with every masked layer twice as wide, the old channels as the fixed group."""
        channels = [2 * conv_out(c) for c in (self.conv1, self.conv2, self.conv3, self.conv4)]
        return ResNet9(self.num_classes, self.in_channels, p_fixed=0.5, channels=channels)

    def zero_cross(self) -> list[str]:
        """Weights fed by branch-internal channels (no mask in between): new-to-old entries zeroed on expansion."""
        return ["res1.branch.1.0.weight", "res2.branch.1.0.weight"]
