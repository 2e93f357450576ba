"""`corrective.fix`: any classifier, any data form, one call (issue 19)."""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import corrective
from byo_data import ones_as_sevens
from corrective import api
from corrective.api.practitioner import Recipe
from corrective.data import load_dataset
from corrective.data.batches import Pipeline
from corrective.errors import UserError
from corrective.training import TrainConfig

FAST = Recipe(epochs=1, batch_size=64, lr=0.02)  # a few steps: these tests check the path, not the figures


class Net(nn.Module):
    """A user's own classifier with batch norm (defined here, outside the registry)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(2)
        )
        self.classify = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.body(x).flatten(1))


class ConvHead(nn.Module):
    """A classifier without any nn.Linear: a 1x1 convolution scores the classes."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.scores = nn.Conv2d(8, 10, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scores(self.body(x)).flatten(1)


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    """Digits with 60 samples of class 1 relabelled 7 (20 of them flagged); a Net trained on them."""
    return ones_as_sevens(Net, TrainConfig(steps=150, batch_size=64, lr=0.05))


class Images(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    """A plain torch Dataset yielding (normalised float image, label), its transform done."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, pipe: Pipeline) -> None:
        self.x, self.y, self.pipe = x, y, pipe

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.pipe.normalise(self.x[i : i + 1].float() / 255)[0], int(self.y[i])


def hf(x: torch.Tensor, y: torch.Tensor, image: str = "image", label: str = "label") -> Any:
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    pil = [Image.fromarray(a.squeeze(0).numpy()) for a in x]
    features = datasets.Features({image: datasets.Image(), label: datasets.Value("int64")})
    return datasets.Dataset.from_dict({image: pil, label: y.tolist()}, features=features)


def check(result: Any, model: nn.Module) -> None:
    assert type(result.model) is type(model)
    assert list(result.model.state_dict()) == list(model.state_dict())
    assert 0.0 <= result.record["held_out_acc_after"] <= 1.0
    assert 0.0 <= result.record["held_out_acc_before"] <= 1.0
    assert len(result.record["val_per_class_acc"]) == 10


@pytest.mark.parametrize("form", ["arrays", "torch", "hf"])
@pytest.mark.parametrize("method", ["auto", "scrub", "ssd", "retrain"])
def test_fix_any_model_on_any_data_form(data: dict[str, Any], form: str, method: str) -> None:
    if form == "arrays":
        train_data: Any = (data["x"].numpy(), data["y"].numpy())
        held: Any = (data["xt"].numpy(), data["yt"].numpy())
    elif form == "torch":
        train_data = Images(data["x"], data["y"], data["pipe"])
        held = Images(data["xt"], data["yt"], data["pipe"])
    else:
        train_data, held = hf(data["x"], data["y"]), hf(data["xt"], data["yt"])
    model = data["net"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = corrective.fix(model, train=train_data, flagged=data["flagged"], held_out=held, method=method, recipe=FAST)
    check(result, model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the given model is untouched
    if method == "auto":
        assert result.record["expand"] == "auto" and result.record["selection"] == "guarded"


def test_readme_python_example_runs(data: dict[str, Any]) -> None:
    """The five lines of README's "Correcting your own model", as written there (the names bound first)."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = readme.split("```python\nimport corrective\n", 1)[1].split("```", 1)[0]
    model, train_ds, test_ds = data["net"], Images(data["x"], data["y"], data["pipe"]), None
    test_ds = Images(data["xt"], data["yt"], data["pipe"])
    ids = data["flagged"].tolist()
    scope: dict[str, Any] = {"model": model, "train_ds": train_ds, "test_ds": test_ds, "ids": ids}
    exec("import corrective\n" + block.replace("epochs=30", "epochs=1"), scope)  # our own README
    assert type(scope["result"].model) is Net and "record" in dir(scope["result"])


def test_a_model_without_linear_needs_its_feature_layer(data: dict[str, Any]) -> None:
    torch.manual_seed(0)
    model = ConvHead().eval()
    arrays = (data["x"].numpy(), data["y"].numpy())
    held = (data["xt"].numpy(), data["yt"].numpy())
    with pytest.raises(UserError, match="feature_layer='name'"):
        corrective.fix(model, arrays, data["flagged"], held, recipe=FAST)
    result = corrective.fix(model, arrays, data["flagged"], held, recipe=FAST, feature_layer="scores")
    assert type(result.model) is ConvHead and list(result.model.state_dict()) == list(model.state_dict())
    with pytest.raises(UserError, match="has no layer 'nope'"):
        corrective.fix(model, arrays, data["flagged"], held, recipe=FAST, feature_layer="nope")


class ViewNet(nn.Module):
    """A hand-written classifier that flattens with `.view`, which channels-last activations do not allow."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 15 * 15, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)
        return self.fc(x.view(x.size(0), -1))


def test_a_model_that_flattens_with_view_keeps_its_layout() -> None:
    """32x32 images train in bf16 channels-last, and the feature pass and predictions run channels-last where the
    model allows it: a model whose `.view` refuses that layout is run in its own, never fails."""
    from corrective.models.layout import is_channels_last, runs_channels_last

    x = torch.zeros(4, 3, 32, 32)
    torch.manual_seed(0)
    model = ViewNet().train()
    assert not runs_channels_last(model, x) and runs_channels_last(Net(in_channels=3), x)
    assert model.training and not is_channels_last(model)  # the trial left mode and layout as they were
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (300, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 300)
    for method in ("scrub", "auto"):
        result = corrective.fix(
            ViewNet(), (images, labels), np.arange(10), (images[:100], labels[:100]), method=method, recipe=FAST
        )
        assert type(result.model) is ViewNet and 0.0 <= result.record["held_out_acc_after"] <= 1.0


def test_retrain_resets_a_copy_or_uses_the_factory(data: dict[str, Any]) -> None:
    arrays = (data["x"].numpy(), data["y"].numpy())
    built: list[int] = []

    def factory() -> nn.Module:
        built.append(1)
        return Net()

    r = corrective.fix(data["net"], arrays, data["flagged"], method="retrain", recipe=FAST, factory=factory)
    assert built == [1] and type(r.model) is Net and math.isnan(r.record["held_out_acc_after"])


class WithToken(Net):
    def __init__(self) -> None:
        super().__init__()
        self.token = nn.Parameter(torch.zeros(1))  # no reset_parameters() re-draws it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + self.token


def test_a_method_that_needs_what_the_model_lacks_is_refused_before_running(data: dict[str, Any]) -> None:
    arrays = (data["x"].numpy(), data["y"].numpy())
    model = WithToken().eval()
    with pytest.raises(UserError, match=r"method 'retrain' needs a fresh model .* keep token .*pass factory="):
        corrective.fix(model, arrays, data["flagged"], method="retrain", recipe=FAST)
    with pytest.raises(UserError, match=r"method 'rem' needs capacity masks .*Net has none"):
        corrective.fix(data["net"], arrays, data["flagged"], method="rem", recipe=FAST)
    with pytest.raises(UserError, match="oracle bound"):
        corrective.fix(data["net"], arrays, data["flagged"], method="oracle", recipe=FAST)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ("labels", "label 12 in the train split is outside the model's 10 classes"),
        ("output", r"returns \(4, 10, 1\) for a batch of 4 images, not logits \(N, classes\)"),
        ("columns", r"has no column 'image' \(it has img, label\)"),
        ("size", "fails on the data's images"),
    ],
)
def test_bad_input_is_one_line(data: dict[str, Any], change: str, needle: str) -> None:
    model: nn.Module = data["net"]
    x, y = data["x"].numpy(), data["y"].numpy().copy()
    train_data: Any = (x, y)
    if change == "labels":
        y[3] = 12
    elif change == "output":
        model = nn.Sequential(data["net"], nn.Unflatten(1, (10, 1)))
    elif change == "columns":
        train_data = hf(data["x"][:50], data["y"][:50], image="img")
    elif change == "size":
        train_data = (np.zeros((20, 2, 8, 8), np.uint8), y[:20])  # two channels for a one-channel model
    with pytest.raises(UserError, match=needle) as e:
        corrective.fix(model, train_data, [0, 1], recipe=FAST, image_key="image")
    assert "\n" not in str(e.value)


def test_fix_equals_the_existing_path_on_a_registered_model(tmp_path: Path) -> None:
    """corrective.fix on a registered model with its data as arrays gives the record api.correct gives on the
    data as the npz loader reads it, the registered model's spec and pipeline (the path `corrective fix` took)."""
    from corrective.api.practitioner import recipe
    from corrective.models import ModelSpec
    from corrective.runs import load_weights, save_model

    root = tmp_path / "user"
    root.mkdir()
    d = load_dataset("digits", val_fraction=0.0)
    np.savez(root / "train.npz", x=d.train.x.squeeze(1).numpy(), y=d.train.y.numpy())
    np.savez(root / "test.npz", x=d.test.x.squeeze(1).numpy(), y=d.test.y.numpy())
    run = api.train_run(
        "npz", root=root, manipulation="random_swap", model="cnn_small", preset="digits", steps=60, val_fraction=0.0
    )
    save_model(run.model, root / "model.safetensors")
    flagged = run.manipulation.ids[:10]
    ds = load_dataset("npz", root, val_fraction=0.0)
    spec = ModelSpec("cnn_small", 10, 1, {})
    net = load_weights(spec.build(), root / "model.safetensors").eval()
    pipe, ids = Pipeline.of(ds), flagged
    cfg = recipe(len(ds.train), "digits", None, 40, None, None, 0)
    old = api.correct(
        net, ds.train, ids, method="scrub", pipeline=pipe, config=cfg, spec=spec, held_out=ds.test, seed=0
    )
    arrays = (d.train.x.squeeze(1).numpy(), d.train.y.numpy())
    held = (d.test.x.squeeze(1).numpy(), d.test.y.numpy())
    new = corrective.fix(net, arrays, flagged, held, method="scrub", recipe=Recipe(preset="digits", steps=40))
    skip = {"unlearn_seconds", "model", "num_classes", "n_train", "streamed", "recipe"}
    skip |= {"held_out_acc_before", "held_out_acc_after"}
    assert {k: v for k, v in new.record.items() if k not in skip} == {
        k: v for k, v in old.record.items() if k not in skip
    }
    assert new.record["recipe"] == cfg.to_dict()
    for a, b in zip(new.model.state_dict().values(), old.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_the_entry_point_never_receives_the_manipulated_ids(data: dict[str, Any], monkeypatch: pytest.MonkeyPatch):
    """No parameter of `corrective.fix` takes S_m, and the task its method runs on holds none."""
    params = set(inspect.signature(corrective.fix).parameters)
    assert not params & {"known_manipulated", "manipulated", "manipulated_ids", "s_m", "manipulation"}
    seen = []
    real = api.run_candidates

    def spy(task: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(task)
        return real(task, *args, **kwargs)

    monkeypatch.setattr(api.core, "run_candidates", spy)
    corrective.fix(data["net"], (data["x"].numpy(), data["y"].numpy()), data["flagged"], method="scrub", recipe=FAST)
    assert len(seen) == 1 and seen[0].known_manipulated is None
    assert sorted(seen[0].forget_ids.tolist()) == sorted(data["flagged"].tolist())


def test_an_image_folder_written_by_the_test_read_through_datasets(data: dict[str, Any], tmp_path: Path) -> None:
    """Class folders of PNGs (ImageFolder's layout) read with `datasets`' imagefolder builder, then fixed."""
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    for split, x, y in (("train", data["x"][:300], data["y"][:300]), ("test", data["xt"][:100], data["yt"][:100])):
        for i, (img, label) in enumerate(zip(x, y, strict=True)):
            folder = tmp_path / "folder" / split / f"c{int(label)}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img.squeeze(0).numpy()).save(folder / f"{i:04d}.png")
    loaded = datasets.load_dataset("imagefolder", data_dir=str(tmp_path / "folder"))
    names = loaded["train"].features["label"].names  # classes sorted by folder name: c0, c1, ..., c9
    assert names == [f"c{c}" for c in range(10)]
    flagged = [i for i, label in enumerate(loaded["train"]["label"]) if label == 7][:5]
    result = corrective.fix(data["net"], loaded["train"], flagged, loaded["test"], method="scrub", recipe=FAST)
    check(result, data["net"])
