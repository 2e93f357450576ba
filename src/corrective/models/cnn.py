"""Small CNNs of three conv blocks and a linear head: `cnn_small` for 8x8 digits, `cnn28` the CPU network for
28x28 images (MNIST, Fashion-MNIST)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from corrective.models.masks import CapacityMask, context
from corrective.models.registry import register_model
from corrective.models.resnet9 import conv_bn, conv_out

WIDTHS_28 = (32, 64, 128)  # cnn28's block widths at width 1


@register_model(name="cnn_small")
class SmallCNN(nn.Module):
    """conv1 (8x8) -> conv2+pool (4x4) -> conv3+pool (2x2) -> global max-pool -> fc.

    Capacity masks (`models.masks`) after conv1, conv2 and conv3; `channels` (c1, c2, c3) overrides `width`.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        width: float = 1.0,
        p_fixed: float = 1.0,
        p_mem: float = 0.0,
        channels: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.num_classes, self.in_channels = num_classes, in_channels
        c1, c2, c3 = channels or [max(1, int(round(c * width))) for c in (16, 32, 64)]
        self.conv1 = conv_bn(in_channels, c1)
        self.conv2 = conv_bn(c1, c2, pool=True)
        self.conv3 = conv_bn(c2, c3, pool=True)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(c3, num_classes)
        self.masks = nn.ModuleList(CapacityMask(c, p_fixed, p_mem, i) for i, c in enumerate((c1, c2, c3)))

    def forward(self, x: Tensor, ids: Tensor | None = None, mode: str | None = None) -> Tensor:
        ctx = context(mode, ids)
        for layer, mask in zip((self.conv1, self.conv2, self.conv3), self.masks, strict=True):
            x = mask(layer(x), ctx)
        return self.fc(self.pool(x).flatten(1))

    def widened(self) -> SmallCNN:
        """Every masked layer twice as wide, the old channels as the fixed group."""
        channels = [2 * conv_out(c) for c in (self.conv1, self.conv2, self.conv3)]
        return SmallCNN(self.num_classes, self.in_channels, p_fixed=0.5, channels=channels)

    def zero_cross(self) -> list[str]:
        return []  # every new channel passes a mask before it reaches an old one


def conv_pool_bn(c_in: int, c_out: int) -> nn.Sequential:
    """Conv 3x3 (no bias), 2x2 max-pool, batch norm, ReLU: pooling before the element-wise layers makes them
    4x cheaper (airbench's order), which is most of a small network's CPU time."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(c_out), nn.ReLU()
    )


@register_model(name="cnn28")
class CNN28(nn.Module):
    """The CPU network for 28x28 images: three conv-pool-BN-ReLU blocks (28 -> 14 -> 7 -> 3 px) at widths
    32/64/128, global max-pool, linear head.

    Capacity masks after each block; `channels` (c1, c2, c3) overrides `width`.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        width: float = 1.0,
        p_fixed: float = 1.0,
        p_mem: float = 0.0,
        channels: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.num_classes, self.in_channels = num_classes, in_channels
        c1, c2, c3 = channels or [max(1, int(round(c * width))) for c in WIDTHS_28]
        self.block1 = conv_pool_bn(in_channels, c1)
        self.block2 = conv_pool_bn(c1, c2)
        self.block3 = conv_pool_bn(c2, c3)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(c3, num_classes)
        self.masks = nn.ModuleList(CapacityMask(c, p_fixed, p_mem, i) for i, c in enumerate((c1, c2, c3)))

    def forward(self, x: Tensor, ids: Tensor | None = None, mode: str | None = None) -> Tensor:
        ctx = context(mode, ids)
        for block, mask in zip((self.block1, self.block2, self.block3), self.masks, strict=True):
            x = mask(block(x), ctx)
        return self.fc(self.pool(x).flatten(1))

    def widened(self) -> CNN28:
        """Every masked layer twice as wide, the old channels as the fixed group."""
        channels = [2 * conv_out(b) for b in (self.block1, self.block2, self.block3)]
        return CNN28(self.num_classes, self.in_channels, p_fixed=0.5, channels=channels)

    def zero_cross(self) -> list[str]:
        return []  # every new channel passes a mask before it reaches an old one
