"""Tests for stages/model/network.py: the ReidModel structure (stem ReLU, last stride, BNNeck head, architectures)."""

import pytest
import torch

from helpers_model import model_config, random_images
from stages.errors import AuxReidError
from stages.model.network import ReidModel
from stages.model.pretrained import initial_model


def test_reidmodel_stem_relu_changes_network_not_weights():
    plain = initial_model(model_config(), num_classes=5)
    with_relu = initial_model(model_config(stem_relu=True), num_classes=5)
    assert isinstance(plain.stem_relu, torch.nn.Identity) and isinstance(with_relu.stem_relu, torch.nn.ReLU)
    assert plain.state_dict().keys() == with_relu.state_dict().keys()
    for key, value in plain.state_dict().items():
        assert torch.equal(value, with_relu.state_dict()[key])
    with torch.no_grad():
        f_plain = plain.eval().forward_features(random_images())
        f_relu = with_relu.eval().forward_features(random_images())
    assert (f_plain - f_relu).abs().max() > 1e-3


def test_reidmodel_last_stride_sets_layer4_downsampling():
    for arch, strided in (("resnet18", "conv1"), ("resnet50", "conv2")):
        for stride in (1, 2):
            model = ReidModel(arch=arch, num_classes=3, last_stride=stride)
            assert getattr(model.layer4[0], strided).stride == (stride, stride)
            assert model.layer4[0].downsample[0].stride == (stride, stride)
    model = ReidModel(arch="resnet18", num_classes=3, last_stride=1).eval()
    with torch.no_grad():
        x = model.layer3(model.layer2(model.layer1(model.maxpool(model.bn1(model.conv1(random_images()))))))
        assert model.layer4(x).shape == (2, 512, 2, 1)


def test_reidmodel_head_neck_bias_frozen_zero_and_bias_free_classifier():
    model = ReidModel(arch="resnet18", num_classes=7)
    assert not model.neck.bias.requires_grad and torch.count_nonzero(model.neck.bias) == 0
    assert model.classifier.bias is None and model.classifier.weight.shape == (7, 512)
    assert model.num_classes == 7 and model.feature_dim == 512
    f, bn_f, logits = model.eval()(random_images())
    assert f.shape == bn_f.shape == (2, 512) and logits.shape == (2, 7)
    assert torch.allclose(logits, bn_f @ model.classifier.weight.T, atol=1e-6)
    assert ReidModel(arch="resnet18", num_classes=0).forward_head(f)[1] is None


def test_reidmodel_unknown_arch_lists_choices():
    with pytest.raises(AuxReidError, match=r"^unknown model.arch 'resnet101'; choose one of resnet18, resnet34, resnet50$"):
        ReidModel(arch="resnet101", num_classes=1)
