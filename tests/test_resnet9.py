from __future__ import annotations

import pytest
import torch

from corrective.errors import UserError
from corrective.models import create_model
from corrective.models.masks import CapacityMask, expand


def test_resnet9_is_the_papers_network() -> None:
    m = create_model("resnet9", num_classes=10, in_channels=3)
    assert sum(p.numel() for p in m.parameters()) == 2_276_224
    convs = [
        (c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding, c.bias is not None)
        for c in m.modules()
        if isinstance(c, torch.nn.Conv2d)
    ]
    assert convs == [
        (3, 64, (3, 3), (1, 1), (1, 1), True),  # conv1
        (64, 128, (5, 5), (2, 2), (2, 2), True),  # conv2: 5x5 stride 2, no pool
        (128, 128, (3, 3), (1, 1), (1, 1), True),
        (128, 128, (3, 3), (1, 1), (1, 1), True),  # res1
        (128, 256, (3, 3), (1, 1), (1, 1), True),  # conv3 (+ 2x2 max-pool)
        (256, 256, (3, 3), (1, 1), (1, 1), True),
        (256, 256, (3, 3), (1, 1), (1, 1), True),  # res2
        (256, 128, (3, 3), (1, 1), (0, 0), True),  # conv4: unpadded, no pool
    ]
    pools = [type(p).__name__ for p in m.modules() if isinstance(p, (torch.nn.MaxPool2d, torch.nn.AdaptiveMaxPool2d))]
    assert pools == ["MaxPool2d", "AdaptiveMaxPool2d"]  # conv3's 2x2 pool, then the global max-pool
    assert isinstance(m.fc, torch.nn.Linear) and m.fc.bias is None and m.fc.in_features == 128
    assert all(c.alpha == 0.075 for c in m.modules() if isinstance(c, torch.nn.CELU))
    assert sum(isinstance(c, torch.nn.BatchNorm2d) for c in m.modules()) == 8


@pytest.mark.parametrize(("size", "channels"), [(28, 1), (32, 3), (11, 3)])
def test_resnet9_runs_from_11_pixels_and_refuses_smaller_images_in_one_line(size, channels) -> None:
    m = create_model("resnet9", num_classes=10, in_channels=channels, width=0.125).eval()
    assert m(torch.rand(2, channels, size, size)).shape == (2, 10)
    with pytest.raises(UserError, match=r"at least 11x11 pixels.*got 8x8.*cnn_small") as e:
        m(torch.rand(2, channels, 8, 8))
    assert "\n" not in str(e.value)


def test_resnet9_masks_sit_at_six_places_and_expand_exactly() -> None:
    torch.manual_seed(0)
    m = create_model("resnet9", num_classes=10, p_fixed=0.5, p_mem=0.2)
    masks = [mod for mod in m.modules() if isinstance(mod, CapacityMask)]
    assert [k.channels for k in masks] == [64, 128, 128, 256, 256, 128]
    x, ids = torch.rand(4, 3, 32, 32), torch.arange(4)
    assert not torch.equal(m.eval()(x), m(x, ids=ids, mode="masked"))
    plain = create_model("resnet9", num_classes=10, width=0.25)
    plain.train()
    plain(torch.randn(8, 3, 32, 32))  # non-trivial BN statistics
    plain.eval()
    wide = expand(plain).eval()
    torch.testing.assert_close(wide(x), plain(x), rtol=1e-5, atol=1e-5)
    assert wide.conv1[0].out_channels == 32 and wide.fc.in_features == 64
