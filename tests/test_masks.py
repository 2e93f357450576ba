from __future__ import annotations

import pytest
import torch

from corrective import api
from corrective.errors import UserError
from corrective.models import create_model
from corrective.models.masks import CapacityMask, MaskContext, example_masks, expand, has_reserve, set_p_mem


def test_masks_are_fixed_by_the_id_alone() -> None:
    ids = torch.tensor([5, 17, 3, 10**12, -1])
    a = example_masks(ids, layer=2, n=64, p_mem=0.3)
    torch.manual_seed(123)  # the global RNG plays no part
    b = example_masks(ids.flip(0), layer=2, n=64, p_mem=0.3).flip(0)  # another batch order
    c = example_masks(ids[1:2], layer=2, n=64, p_mem=0.3)  # another batch composition
    assert torch.equal(a, b) and torch.equal(a[1:2], c)
    assert not torch.equal(a, example_masks(ids, layer=3, n=64, p_mem=0.3))  # layers differ
    many = example_masks(torch.arange(2000), layer=0, n=64, p_mem=0.3).float().mean()
    assert abs(float(many) - 0.3) < 0.01
    assert not example_masks(ids, 0, 64, 0.0).any() and example_masks(ids, 0, 64, 1.0).all()


def test_drop_zeroes_the_added_group_without_rescaling() -> None:
    mask = CapacityMask(8, p_fixed=0.5, p_mem=0.2, layer=0)
    x = torch.rand(3, 8, 2, 2) + 1
    out = mask(x, MaskContext("drop"))
    assert torch.equal(out[:, :4], x[:, :4]) and not out[:, 4:].any()
    tokens = torch.rand(3, 5, 8) + 1  # (B, T, features): the last dim is masked
    out = mask(tokens, MaskContext("drop"))
    assert torch.equal(out[..., :4], tokens[..., :4]) and not out[..., 4:].any()
    masked = mask(x, MaskContext("masked", torch.arange(3)))
    assert torch.equal(masked[:, :4], x[:, :4])
    assert set(masked[:, 4:].flatten().tolist()) <= set(x[:, 4:].flatten().tolist()) | {0.0}
    with pytest.raises(ValueError, match="ids"):
        MaskContext("masked")


def test_p_mem_zero_equals_drop_and_plain_models_ignore_modes() -> None:
    torch.manual_seed(0)
    model = create_model("cnn_small", 10, 1, p_fixed=0.5, p_mem=0.0).eval()
    x, ids = torch.rand(4, 1, 8, 8), torch.arange(4)
    assert torch.equal(model(x), model(x, ids=ids, mode="masked"))
    assert not torch.equal(model(x), model(x, mode="full"))
    plain = create_model("cnn_small", 10, 1).eval()
    assert not has_reserve(plain)
    assert torch.equal(plain(x), plain(x, ids=ids, mode="masked")) and torch.equal(plain(x), plain(x, mode="full"))


@pytest.mark.parametrize(
    ("name", "kwargs", "shape"),
    [
        ("cnn_small", {}, (6, 1, 8, 8)),
        ("cnn28", {"width": 0.25}, (6, 1, 28, 28)),
        ("resnet9", {"width": 0.125}, (6, 3, 16, 16)),
        ("wrn28_10", {"depth": 10, "widen": 2}, (6, 3, 16, 16)),
        ("vit_small", {"image_size": 16, "patch": 4, "dim": 32, "depth": 2, "heads": 4, "mlp_dim": 48}, (6, 3, 16, 16)),
    ],
)
def test_expanded_model_in_drop_mode_computes_the_original(name, kwargs, shape) -> None:
    torch.manual_seed(0)
    model = create_model(name, 10, shape[1], **kwargs)
    x = torch.randn(shape)
    model.train()
    model(x)  # non-trivial BN statistics
    model.eval()
    wide = expand(model, p_mem=0.2).eval()
    assert has_reserve(wide) and sum(p.numel() for p in wide.parameters()) > sum(p.numel() for p in model.parameters())
    torch.testing.assert_close(wide(x), model(x), rtol=1e-5, atol=1e-5)
    if name != "wrn28_10":  # WRN zeroes every new-to-old weight, so its new channels start silent
        assert not torch.allclose(wide(x, ids=torch.arange(6), mode="masked"), model(x), atol=1e-4)
    with pytest.raises(ValueError, match="reserved"):
        expand(wide)
    assert set_p_mem(wide, 0.0) is wide


def test_capacity_and_etd_training_record_their_type(tmp_path) -> None:
    for kind in ("capacity", "etd"):
        run = api.train_run(
            "digits", manipulation="random_swap", steps=20, training=kind, out=tmp_path / kind, progress=False
        )
        assert has_reserve(run.model) and run.metrics["clean_acc"] > 0.3
        loaded = api.load_run(tmp_path / kind, device="cpu")
        assert loaded.training_type == kind and loaded.spec.kwargs["p_fixed"] == 0.5
        x = loaded.dataset.test.x[:8].float()  # the loaded run's data: on the CPU, as its model
        assert torch.equal(loaded.model(x), loaded.model(x, mode="drop"))  # inference is drop mode
    masks = [m for m in loaded.model.modules() if isinstance(m, CapacityMask)]
    assert [m.p_mem for m in masks] == [0.2] * 3
    with pytest.raises(UserError, match="unknown training type"):
        api.train_run("digits", training="wide", progress=False)


def test_the_mask_table_gives_what_the_hash_gives() -> None:
    """A masked layer keeps the patterns of the ids it has seen (each hashed once): the same masks as hashing
    every call, for new ids, repeated ids and the negative shared id, and a changed p_mem starts afresh."""
    layer = CapacityMask(16, 0.5, 0.2, layer=1)
    gen = torch.Generator().manual_seed(0)
    ctx_of = lambda ids: MaskContext("masked", ids)  # noqa: E731
    for _ in range(20):
        ids = torch.cat([torch.randint(0, 500, (30,), generator=gen), torch.tensor([-1, -1])])
        assert torch.equal(layer.keep(ctx_of(ids), len(ids), ids.device)[:, 8:], example_masks(ids, 1, 8, 0.2))
    assert layer.table is not None and len(layer.table.ids) == len(layer.table.ids.unique()) <= 501
    set_p_mem(layer, 0.7)
    ids = torch.arange(40)
    assert torch.equal(layer.keep(ctx_of(ids), 40, ids.device)[:, 8:], example_masks(ids, 1, 8, 0.7))
