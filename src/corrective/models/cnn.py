"""A small CNN for 8x8 images (scikit-learn's digits): three conv-BN-CELU blocks and a linear head."""

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
