from __future__ import annotations

import pytest
import torch

from corrective.errors import UserError
from corrective.models import create_model, list_models


@pytest.mark.parametrize(
    ("name", "kwargs", "shape"),
    [
        ("cnn_small", {}, (2, 1, 8, 8)),
        ("cnn28", {}, (2, 1, 28, 28)),
        ("resnet9", {"width": 0.25}, (2, 3, 32, 32)),
        ("wrn28_10", {"depth": 10, "widen": 1}, (2, 3, 32, 32)),
    ],
)
def test_models_map_images_to_logits(name, kwargs, shape) -> None:
    model = create_model(name, num_classes=7, in_channels=shape[1], **kwargs).eval()
    assert model(torch.rand(shape)).shape == (2, 7)


def test_resnet9_has_the_papers_shape() -> None:
    m = create_model("resnet9", num_classes=10)
    convs = [mod.out_channels for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)]
    assert convs == [64, 128, 128, 128, 256, 256, 256, 128]
    assert m.fc.bias is None
    celu = [mod for mod in m.modules() if isinstance(mod, torch.nn.CELU)]
    assert celu and all(c.alpha == 0.075 for c in celu)


def test_cnn28_pools_before_its_element_wise_layers() -> None:
    m = create_model("cnn28", num_classes=10, in_channels=1)
    assert [type(layer).__name__ for layer in m.conv1] == ["Conv2d", "MaxPool2d", "BatchNorm2d", "ReLU"]
    assert [mod.out_channels for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)] == [32, 64, 128]
    assert sum(p.numel() for p in m.parameters()) == 94_186


def test_unknown_model_and_bad_setting_are_clear() -> None:
    with pytest.raises(UserError, match="known: .*resnet9"):
        create_model("resnet10", 10)
    with pytest.raises(UserError, match="model 'wrn28_10' does not take setting 'width'; its settings: depth, widen"):
        create_model("wrn28_10", 10, width=2.0)
    assert {"cnn_small", "resnet9", "wrn28_10"} <= set(list_models())


def test_a_bug_inside_a_constructor_is_not_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings are checked against the factory's signature; a TypeError raised inside it stays a bug."""
    from corrective.models import registry

    def broken(num_classes: int, in_channels: int, width: float = 1.0) -> torch.nn.Module:
        raise TypeError("a bug in the constructor")

    monkeypatch.setitem(registry.MODELS, "broken", broken)
    with pytest.raises(TypeError, match="a bug in the constructor"):
        create_model("broken", 10, width=2.0)
    with pytest.raises(UserError, match="does not take setting 'depth'; its settings: width"):
        create_model("broken", 10, depth=3)


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_runs_channels_last_with_and_without_capacity(name: str) -> None:
    """Training in bf16, the feature pass and predictions take the fast layout only where a two-sample forward
    allows it (`models.layout`): a registered network that lost it would silently run 2-3x slower."""
    from corrective.models.layout import is_channels_last, runs_channels_last
    from corrective.models.masks import with_capacity

    torch.manual_seed(0)
    model = create_model(name, 10, 3).train()
    x = torch.zeros(2, 3, 32, 32)
    assert runs_channels_last(model, x) and runs_channels_last(with_capacity(model, 0.2), x)
    assert model.training and not is_channels_last(model)  # mode and layout as they were
