from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from corrective import api
from corrective.errors import UserError
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
    assert model.args == {
        "num_classes": 10,
        "in_channels": 3,
        "image_size": 32,
        "patch": 8,
        "dim": 512,
        "depth": 4,
        "heads": 8,
        "mlp_dim": 1536,
    }
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
    with pytest.raises(UserError, match="multiple of the patch"):
        create_model("vit_small", 10, 3, image_size=30)
    with pytest.raises(UserError, match="multiple of the patch"):
        create_model("vit_small", 10, 3, image_size=32, patch=5)


def test_vit_gets_the_datas_image_size(tmp_path: Path) -> None:
    """28 px data (MNIST's size): the run hands vit_small its image size, patches of 7 px, and trains."""
    gen = torch.Generator().manual_seed(0)
    for split, n in (("train", 40), ("test", 20)):
        x = torch.randint(0, 256, (n, 28, 28), generator=gen, dtype=torch.uint8).numpy()
        np.savez(tmp_path / f"{split}.npz", x=x, y=np.arange(n) % 4)
    run = api.train_run(
        "npz",
        root=tmp_path,
        manipulation="random_swap",
        size=4,
        model="vit_small",
        preset="digits",
        steps=2,
        val_fraction=0.0,
        progress=False,
    )
    assert run.spec.kwargs["image_size"] == 28 and run.model.args["patch"] == 7
    assert 0.0 <= run.metrics["clean_acc"] <= 1.0
