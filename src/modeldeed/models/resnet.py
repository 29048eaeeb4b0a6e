"""ResNets as used on CIFAR: ResNet-20 (He et al. 2016, §4.2) and ResNet-18 with a 3×3 stem and no max-pool."""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, blocks: list[int], widths: list[int], in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers: list[nn.Module] = []
        in_planes = widths[0]
        for stage, (count, planes) in enumerate(zip(blocks, widths)):
            for i in range(count):
                layers.append(BasicBlock(in_planes, planes, stride=2 if stage > 0 and i == 0 else 1))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.pool(self.layers(out))
        return self.fc(torch.flatten(out, 1))


def resnet20(in_channels: int = 3, num_classes: int = 10, input_size: tuple[int, int] | list[int] = (32, 32)) -> ResNet:
    """Three stages of 16/32/64 channels, three basic blocks each: 0.27 M parameters."""
    return ResNet([3, 3, 3], [16, 32, 64], in_channels, num_classes)


def resnet18(in_channels: int = 3, num_classes: int = 10, input_size: tuple[int, int] | list[int] = (32, 32)) -> ResNet:
    """Four stages of 64/128/256/512 channels, two basic blocks each: 11 M parameters."""
    return ResNet([2, 2, 2, 2], [64, 128, 256, 512], in_channels, num_classes)
