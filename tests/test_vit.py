from __future__ import annotations

import pytest
import torch

from corrective.models import create_model
from corrective.models.vit import LocalitySelfAttention, ShiftedPatchTokens

TINY = {"image_size": 16, "patch": 4, "dim": 32, "depth": 2, "heads": 4, "mlp_dim": 48}


def test_vit_maps_images_to_logits_and_trains() -> None:
    torch.manual_seed(0)
    model = create_model("vit_small", 7, 3, **TINY)
    x = torch.rand(2, 3, 16, 16)
    assert model(x).shape == (2, 7)
    model(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_vit_defaults_are_rems() -> None:
    model = create_model("vit_small", 10, 3)
    assert model.args == {"num_classes": 10, "in_channels": 3, "image_size": 32, "patch": 8, "dim": 512,
                          "depth": 4, "heads": 8, "mlp_dim": 1536}
    assert model.pos.shape == (1, 17, 512)


def test_shifted_patches_see_five_copies() -> None:
    spt = ShiftedPatchTokens(in_channels=3, patch=4, dim=10)
    assert spt.norm.normalized_shape == (5 * 3 * 16,)
    assert spt(torch.rand(2, 3, 16, 16)).shape == (2, 16, 10)


def test_lsa_masks_each_tokens_attention_to_itself() -> None:
    torch.manual_seed(0)
    lsa = LocalitySelfAttention(dim=8, heads=2)
    q, k = torch.randn(2, 2, 5, 4), torch.randn(2, 2, 5, 4)
    attn = lsa.attention(q, k)
    assert torch.equal(attn.diagonal(dim1=-2, dim2=-1), torch.zeros(2, 2, 5))
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 2, 5))
    assert lsa.log_scale.requires_grad and lsa(torch.randn(3, 5, 8)).shape == (3, 5, 8)


def test_vit_rejects_bad_shapes() -> None:
    with pytest.raises(Exception, match="multiple of the patch"):
        create_model("vit_small", 10, 3, image_size=30)
