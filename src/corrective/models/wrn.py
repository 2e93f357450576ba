"""Pre-activation WideResNet (Zagoruyko & Komodakis 2016), WRN-28-10 by default."""

from __future__ import annotations

from torch import Tensor, nn

from corrective.models.masks import CapacityMask, context
from corrective.models.registry import register_model


class WideBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3 with an identity or 1x1 projection shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        same = stride == 1 and c_in == c_out
        self.shortcut = None if same else nn.Conv2d(c_in, c_out, 1, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        o = self.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(o)
        o = self.conv2(self.drop(self.relu(self.bn2(self.conv1(o)))))
        return o + skip


@register_model(name="wrn28_10")
class WideResNet(nn.Module):
    """stem conv -> three groups of (depth-4)/6 blocks at 16k, 32k, 64k channels -> BN-ReLU -> avg-pool -> fc.

    Capacity masks (`models.masks`) sit after each group's output (the sum of its last residual block),
    not inside blocks. With pre-activation blocks, new channels reach old ones through BN and
    within-group blocks, so expansion zeroes every new-to-old weight (`zero_cross`).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        depth: int = 28,
        widen: int = 10,
        dropout: float = 0.0,
        p_fixed: float = 1.0,
        p_mem: float = 0.0,
    ) -> None:
        super().__init__()
        self.args = (num_classes, in_channels, depth, widen, dropout)
        if (depth - 4) % 6:
            raise ValueError(f"WideResNet depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.stem = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        groups = []
        for g in range(3):
            stride = 1 if g == 0 else 2
            blocks = [WideBlock(widths[g], widths[g + 1], stride, dropout)]
            blocks += [WideBlock(widths[g + 1], widths[g + 1], 1, dropout) for _ in range(n - 1)]
            groups.append(nn.Sequential(*blocks))
        self.group1, self.group2, self.group3 = groups
        self.bn = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[3], num_classes)
        self.masks = nn.ModuleList(CapacityMask(widths[g + 1], p_fixed, p_mem, g) for g in range(3))

    def forward(self, x: Tensor, ids: Tensor | None = None, mode: str | None = None) -> Tensor:
        ctx = context(mode, ids)
        x = self.stem(x)
        for group, mask in zip((self.group1, self.group2, self.group3), self.masks, strict=True):
            x = mask(group(x), ctx)
        return self.fc(self.pool(self.relu(self.bn(x))).flatten(1))

    def widened(self) -> WideResNet:
        """Twice the widening factor (every group twice as wide), the old channels as the fixed group."""
        num_classes, in_channels, depth, widen, dropout = self.args
        if widen == 1:
            raise ValueError("WideResNet with widen=1 has an identity shortcut that widening replaces; use widen >= 2")
        return WideResNet(num_classes, in_channels, depth, 2 * widen, dropout, p_fixed=0.5)

    def zero_cross(self) -> list[str]:
        return [n for n, p in self.named_parameters() if p.ndim >= 2 and not n.startswith("stem")]
