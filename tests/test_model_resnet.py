"""Tests for stages/model/resnet.py: the own ResNet against torchvision's (weights, RNG use, output, URLs)."""

import pytest
import torch
import torchvision

from helpers_model import random_images


@pytest.mark.parametrize("arch", ["resnet18", "resnet34", "resnet50"])
def test_own_resnet_equals_torchvision_weights_rng_output_and_url(arch):
    from stages.model.resnet import IMAGENET_URLS, ResNet

    torch.manual_seed(3)
    reference, after_reference = getattr(torchvision.models, arch)(weights=None).eval(), torch.rand(4)
    torch.manual_seed(3)
    own, after_own = ResNet(arch).eval(), torch.rand(4)
    expected, state = reference.state_dict(), own.state_dict()
    assert list(state) == list(expected)
    assert all(torch.equal(state[key], expected[key]) for key in expected)
    assert torch.equal(after_own, after_reference)  # the generator is left where torchvision leaves it
    images = random_images()
    pooled = torch.flatten(own.avgpool(own.layer4(own.layer3(own.layer2(own.layer1(
        own.maxpool(own.relu(own.bn1(own.conv1(images))))))))), 1)
    assert torch.equal(own.fc(pooled), reference(images))
    weights = getattr(torchvision.models, f"ResNet{arch.removeprefix('resnet')}_Weights").IMAGENET1K_V1
    assert IMAGENET_URLS[arch] == weights.url
