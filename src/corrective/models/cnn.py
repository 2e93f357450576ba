"""Small CNNs of three conv blocks and a linear head: `cnn_small` for 8x8 digits, `cnn28` the CPU network for
28x28 images (MNIST, Fashion-MNIST)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from corrective.models.masks import CapacityMask, context
from corrective.models.registry import register_model
from corrective.models.resnet9 import conv_bn, conv_out


@register_model(name="cnn_small")
class SmallCNN(nn.Module):
    """conv1 (8x8) -> conv2+pool (4x4) -> conv3+pool (2x2) -> global max-pool -> fc.

    Capacity masks (`models.masks`) after conv1, conv2 and conv3; `channels` (c1, c2, c3) overrides `width`.
    """

    widths = (16, 32, 64)  # the blocks' channels at width 1

    def block(self, c_in: int, c_out: int, index: int) -> nn.Module:
        """Block `index` (0, 1, 2): conv-BN-CELU, pooled after the first."""
        return conv_bn(c_in, c_out, pool=index > 0)

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
        c1, c2, c3 = channels or [max(1, int(round(c * width))) for c in self.widths]
        self.conv1 = self.block(in_channels, c1, 0)
        self.conv2 = self.block(c1, c2, 1)
        self.conv3 = self.block(c2, c3, 2)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(c3, num_classes)
        self.masks = nn.ModuleList(CapacityMask(c, p_fixed, p_mem, i) for i, c in enumerate((c1, c2, c3)))

    def forward(self, x: Tensor, ids: Tensor | None = None, mode: str | None = None) -> Tensor:
        ctx = context(mode, ids)
        for layer, mask in zip((self.conv1, self.conv2, self.conv3), self.masks, strict=True):
            x = mask(layer(x), ctx)
        return self.fc(self.pool(x).flatten(1))

    def widened(self) -> SmallCNN:
        """Every masked layer twice as wide, the old channels as the fixed group (the same class)."""
        channels = [2 * conv_out(c) for c in (self.conv1, self.conv2, self.conv3)]
        return type(self)(self.num_classes, self.in_channels, p_fixed=0.5, channels=channels)

    def zero_cross(self) -> list[str]:
        return []  # every new channel passes a mask before it reaches an old one


def conv_pool_bn(c_in: int, c_out: int) -> nn.Sequential:
    """Conv 3x3 (no bias), 2x2 max-pool, batch norm, ReLU: pooling before the element-wise layers makes them
    4x cheaper (airbench's order), which is most of a small network's CPU time."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(c_out), nn.ReLU()
    )


@register_model(name="cnn28")
class CNN28(SmallCNN):
    """The CPU network for 28x28 images: `cnn_small` with three conv-pool-BN-ReLU blocks (28 -> 14 -> 7 -> 3 px)
    at widths 32/64/128, global max-pool, linear head; capacity masks after each block."""

    widths = (32, 64, 128)

    def block(self, c_in: int, c_out: int, index: int) -> nn.Module:
        return conv_pool_bn(c_in, c_out)
