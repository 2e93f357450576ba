"""A small CNN for 8x8 images (scikit-learn's digits): three conv-BN-CELU blocks and a linear head."""

from __future__ import annotations

from torch import Tensor, nn

from corrective.models.registry import register_model
from corrective.models.resnet9 import conv_bn


class SmallCNN(nn.Module):
    """conv1 (8x8) -> conv2+pool (4x4) -> conv3+pool (2x2) -> global max-pool -> fc."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: float = 1.0) -> None:
        super().__init__()
        c1, c2, c3 = (max(1, int(round(c * width))) for c in (16, 32, 64))
        self.conv1 = conv_bn(in_channels, c1)
        self.conv2 = conv_bn(c1, c2, pool=True)
        self.conv3 = conv_bn(c2, c3, pool=True)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(c3, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        for layer in (self.conv1, self.conv2, self.conv3):
            x = layer(x)
        return self.fc(self.pool(x).flatten(1))


@register_model
def cnn_small(num_classes: int = 10, in_channels: int = 1, width: float = 1.0) -> nn.Module:
    return SmallCNN(num_classes, in_channels, width)
