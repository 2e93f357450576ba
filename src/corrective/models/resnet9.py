"""ResNet-9 as in the corrective unlearning papers (conv-BN-CELU blocks, 64-128-256-128 channels)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from corrective.models.masks import CapacityMask, context
from corrective.models.registry import register_model


def conv_bn(c_in: int, c_out: int, pool: bool = False) -> nn.Sequential:
    """3x3 conv without bias, batch norm, CELU(0.075), then optionally a 2x2 max-pool."""
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
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
    """x + f(x) with f two conv-BN-CELU blocks at constant width."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.branch = nn.Sequential(conv_bn(c, c), conv_bn(c, c))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.branch(x)


class ResNet9(nn.Module):
    """conv1 -> conv2+pool -> res1 -> conv3+pool -> res2 -> conv4+pool -> global max-pool -> fc (no bias).

    Capacity masks (`models.masks`) sit after conv1, conv2, the res1 output, conv3, the res2 output
    and conv4, never inside a residual branch; with the default `p_fixed = 1` they do nothing.
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
        self.conv1 = conv_bn(in_channels, c1)
        self.conv2 = conv_bn(c1, c2, pool=True)
        self.res1 = Residual(c2)
        self.conv3 = conv_bn(c2, c3, pool=True)
        self.res2 = Residual(c3)
        self.conv4 = conv_bn(c3, c4, pool=True)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(c4, num_classes, bias=False)
        widths = (c1, c2, c2, c3, c3, c4)
        self.masks = nn.ModuleList(CapacityMask(c, p_fixed, p_mem, i) for i, c in enumerate(widths))

    def forward(self, x: Tensor, ids: Tensor | None = None, mode: str | None = None) -> Tensor:
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


@register_model
def resnet9(
    num_classes: int = 10,
    in_channels: int = 3,
    width: float = 1.0,
    p_fixed: float = 1.0,
    p_mem: float = 0.0,
    channels: Sequence[int] | None = None,
) -> nn.Module:
    return ResNet9(num_classes, in_channels, width, p_fixed, p_mem, channels)
