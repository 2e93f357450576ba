"""A small Vision Transformer for 32 px images (REM's SVHN model), with SPT and LSA.

Lee, Lee & Song 2021, "Vision Transformer for Small-Size Datasets":
- shifted patch tokenisation (SPT): the image is concatenated with four copies shifted diagonally
  by half a patch, then cut into patches, each flattened, layer-normed and projected;
- locality self-attention (LSA): a learnable softmax temperature and the diagonal (each token's
  attention to itself) masked out.
Capacity masks (`models.masks`) act on the feature dimension of each block's MLP hidden layer
(after the GELU): masking the residual stream itself would change every LayerNorm's statistics,
so an expanded model could not compute what the original did.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from corrective.errors import UserError
from corrective.models.masks import CapacityMask, MaskContext, context
from corrective.models.registry import register_model


class ShiftedPatchTokens(nn.Module):
    """(B, C, H, W) -> (B, N, dim): image + 4 half-patch diagonal shifts, patches, LayerNorm, linear."""

    def __init__(self, in_channels: int, patch: int, dim: int) -> None:
        super().__init__()
        self.patch = patch
        flat = 5 * in_channels * patch * patch
        self.norm = nn.LayerNorm(flat)
        self.proj = nn.Linear(flat, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        s, p = self.patch // 2, self.patch
        padded = nn.functional.pad(x, (s, s, s, s))
        diagonal = ((-s, -s), (-s, s), (s, -s), (s, s))
        shifted = [padded[..., s + dy : s + dy + h, s + dx : s + dx + w] for dy, dx in diagonal]
        x = torch.cat([x, *shifted], 1)  # (B, 5C, H, W)
        x = x.unfold(2, p, p).unfold(3, p, p)  # (B, 5C, H/p, W/p, p, p)
        x = x.permute(0, 2, 3, 1, 4, 5).reshape(b, (h // p) * (w // p), -1)  # (B, N, 5C*p*p)
        return self.proj(self.norm(x))


class LocalitySelfAttention(nn.Module):
    """Multi-head self-attention with a learnable temperature and self-token masking."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"ViT dim {dim} must be divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim)
        self.log_scale = nn.Parameter(torch.tensor((dim // heads) ** -0.5).log())

    def attention(self, q: Tensor, k: Tensor) -> Tensor:
        """(B, h, N, N) weights: scaled by the learned temperature, no token attending to itself."""
        logits = (q @ k.transpose(-2, -1)) * self.log_scale.exp()
        eye = torch.eye(q.shape[-2], dtype=torch.bool, device=q.device)
        return logits.masked_fill(eye, torch.finfo(logits.dtype).min).softmax(-1)

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, h, N, hs)
        return self.out((self.attention(q, k) @ v).transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-norm transformer block; the capacity mask sits on the MLP's hidden features."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, p_fixed: float, p_mem: float, layer: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = LocalitySelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, mlp_dim)
        self.act = nn.GELU()
        self.mask = CapacityMask(mlp_dim, p_fixed, p_mem, layer)
        self.fc2 = nn.Linear(mlp_dim, dim)

    def forward(self, x: Tensor, ctx: MaskContext) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(self.mask(self.act(self.fc1(self.norm2(x))), ctx))


@register_model(name="vit_small")
class ViT(nn.Module):
    """SPT tokens + class token + learned positions -> `depth` blocks -> LayerNorm -> linear head on the class token."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        image_size: int = 32,
        patch: int | None = None,
        dim: int = 512,
        depth: int = 4,
        heads: int = 8,
        mlp_dim: int = 1536,
        p_fixed: float = 1.0,
        p_mem: float = 0.0,
    ) -> None:
        super().__init__()
        patch = patch or max(1, image_size // 4)  # a 4 x 4 grid of patches by default (8 px at 32 px)
        if image_size % patch:
            raise UserError(
                f"vit_small: the image size ({image_size} px) must be a multiple of the patch size "
                f"({patch} px); pick a patch that divides it"
            )
        self.args = dict(
            num_classes=num_classes,
            in_channels=in_channels,
            image_size=image_size,
            patch=patch,
            dim=dim,
            depth=depth,
            heads=heads,
            mlp_dim=mlp_dim,
        )
        self.tokens = ShiftedPatchTokens(in_channels, patch, dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, (image_size // patch) ** 2 + 1, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_dim, p_fixed, p_mem, i) for i in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: Tensor, ids: Tensor | None = None, mode: str | None = None) -> Tensor:
        ctx = context(mode, ids)
        x = self.tokens(x)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        for block in self.blocks:
            x = block(x, ctx)
        return self.head(self.norm(x[:, 0]))

    def widened(self) -> ViT:
        """Every MLP hidden layer twice as wide, the old features as the fixed group."""
        return ViT(**{**self.args, "mlp_dim": 2 * self.args["mlp_dim"]}, p_fixed=0.5)

    def zero_cross(self) -> list[str]:
        return []  # new hidden features pass the mask before fc2
