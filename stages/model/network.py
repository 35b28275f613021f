"""The re-id network (Teng et al. 2022 reference model): ResNet backbone, BN neck, bias-free classifier.

ResNet backbone (torchvision's, built by stages.model.resnet; ResNet-50 in the paper, 18/34 for CPU
runs) with a configurable last stride, the reference stem conv1 -> bn1 -> maxpool WITHOUT the ReLU after
bn1 (the `stem_relu` switch adds it), global average pooling -> f, a BatchNorm1d neck whose bias is frozen at zero -> bn_f, and a
bias-free classifier on bn_f with one output per train tracklet.
"""

from __future__ import annotations

import torch
from torch import nn

from stages.config import ModelConfig
from stages.errors import AuxReidError
from stages.model.resnet import Bottleneck, ResNet

ARCHS = ("resnet18", "resnet34", "resnet50")
#: Standard deviation of the classifier's initial weights (the reference's init.normal_(std=0.001)).
CLASSIFIER_INIT_STD = 1e-3



class ReidModel(nn.Module):
    """ResNet re-id model: `forward_features` gives pooled f, `forward_head` gives (bn_f, logits).

    Args:
        arch: one of ARCHS.
        num_classes: classifier outputs (number of train tracklets); 0 builds no classifier (an
            imported evaluation-only model).
        last_stride: stride of layer4's first block, 2 (paper) or 1.
        stem_relu: insert the ReLU after bn1 that the reference leaves out.
    """

    def __init__(self, *, arch: str = "resnet50", num_classes: int, last_stride: int = 2, stem_relu: bool = False):
        super().__init__()
        if arch not in ARCHS:
            raise AuxReidError(f"unknown model.arch '{arch}'; choose one of {', '.join(ARCHS)}")
        resnet = ResNet(arch)
        first = resnet.layer4[0]
        strided = first.conv2 if isinstance(first, Bottleneck) else first.conv1
        strided.stride = (last_stride, last_stride)
        first.downsample[0].stride = (last_stride, last_stride)
        self.arch = arch
        self.conv1, self.bn1, self.maxpool = resnet.conv1, resnet.bn1, resnet.maxpool
        self.stem_relu = nn.ReLU(inplace=True) if stem_relu else nn.Identity()
        self.layer1, self.layer2, self.layer3, self.layer4 = resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4
        self.feature_dim = resnet.fc.in_features
        self.neck = nn.BatchNorm1d(self.feature_dim)
        nn.init.ones_(self.neck.weight)
        nn.init.zeros_(self.neck.bias)
        self.neck.bias.requires_grad_(False)
        self.classifier = nn.Linear(self.feature_dim, num_classes, bias=False) if num_classes > 0 else None
        if self.classifier is not None:
            nn.init.normal_(self.classifier.weight, std=CLASSIFIER_INIT_STD)

    @property
    def num_classes(self) -> int:
        return 0 if self.classifier is None else self.classifier.out_features

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """Backbone + global average pooling.

        Args:
            images: (batch, 3, height, width), normalised.

        Returns:
            f, (batch, feature_dim).
        """
        x = self.maxpool(self.stem_relu(self.bn1(self.conv1(images))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)

    def forward_head(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Neck and classifier.

        Args:
            features: f, (batch, feature_dim).

        Returns:
            bn_f (batch, feature_dim) and logits (batch, num_classes), or None without a classifier.
        """
        bn_f = self.neck(features)
        return bn_f, (self.classifier(bn_f) if self.classifier is not None else None)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Returns (f, bn_f, logits) for a batch of images."""
        features = self.forward_features(images)
        return (features, *self.forward_head(features))


def build_model(model: ModelConfig, *, num_classes: int, arch: str | None = None) -> ReidModel:
    """A randomly initialised ReidModel with the structure the config asks for."""
    return ReidModel(
        arch=arch or model.arch, num_classes=num_classes, last_stride=model.last_stride, stem_relu=model.stem_relu
    )


