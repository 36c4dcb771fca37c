"""ResNet-18 bone-age regressor with an optional sex input, and its checkpoints.

Sex enters as the RSNA 2017 winner and Deeplasia feed it: one scalar through a small
dense layer, concatenated with the pooled image features before the regression head.
The model returns months; the target's mean and SD live in buffers, so a z-scored
head and a raw-months head (the seed recipe) share one forward.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torchvision
from torch import nn

from core.atomic import save_atomic, write_text_atomic
from core.errors import UserFacingError
from training.recipes import Recipe

CHECKPOINT_FORMAT = "boneage-checkpoint-v1"
SEX_FEATURES = 32
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class BoneAgeNet(nn.Module):
    def __init__(self, use_sex: bool, target_mean: float = 0.0, target_std: float = 1.0):
        super().__init__()
        backbone = torchvision.models.resnet18(weights=None)
        backbone.fc = nn.Identity()
        self.backbone = backbone
        self.use_sex = use_sex
        self.sex_encoder = nn.Sequential(nn.Linear(1, SEX_FEATURES), nn.ReLU()) if use_sex else None
        self.head = nn.Linear(512 + (SEX_FEATURES if use_sex else 0), 1)
        self.register_buffer("target_mean", torch.tensor(float(target_mean)))
        self.register_buffer("target_std", torch.tensor(float(target_std)))
        self.register_buffer("pixel_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("pixel_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        # The checkpoint's post-hoc map from the output (after TTA) to months, applied by
        # training/inference.py (training/recalibration.py); None while training and for
        # checkpoints without one. Not part of the state dict: model_from_checkpoint sets it.
        self.recalibration: dict | None = None

    def standardised(self, images: torch.Tensor, male: torch.Tensor) -> torch.Tensor:
        """The head's output: the z-scored bone age, shape (B,). `images`: (B, 1, H, W) in [0, 1]."""
        return self.head_standardised(self.pooled(self.feature_map(images)), male)

    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        """The last residual block's activations (B, 512, H/32, W/32): what Grad-CAM explains."""
        x = (images.expand(-1, 3, -1, -1) - self.pixel_mean) / self.pixel_std
        b = self.backbone
        x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        return b.layer4(b.layer3(b.layer2(b.layer1(x))))

    def pooled(self, feature_map: torch.Tensor) -> torch.Tensor:
        """The backbone's image features (B, 512): the global average of the feature map."""
        return torch.flatten(self.backbone.avgpool(feature_map), 1)

    def head_standardised(self, pooled: torch.Tensor, male: torch.Tensor) -> torch.Tensor:
        """The z-scored bone age (B,) from the pooled image features and the sex."""
        if self.sex_encoder is not None:
            pooled = torch.cat([pooled, self.sex_encoder(male.view(-1, 1).to(pooled.dtype))], dim=1)
        return self.head(pooled).squeeze(1)

    def months_from_feature_map(self, feature_map: torch.Tensor, male: torch.Tensor) -> torch.Tensor:
        """Bone age in months (B,) from saved layer-4 activations: the rest of forward()."""
        return self.head_standardised(self.pooled(feature_map), male) * self.target_std + self.target_mean

    def forward(self, images: torch.Tensor, male: torch.Tensor) -> torch.Tensor:
        """Bone age in months, shape (B,)."""
        return self.standardised(images, male) * self.target_std + self.target_mean

    @property
    def gradcam_layer(self) -> nn.Module:
        return self.backbone.layer4[-1]


def build_model(recipe: Recipe, target_mean: float, target_std: float) -> BoneAgeNet:
    """A fresh model initialised as the recipe says (random, ImageNet, or a checkpoint)."""
    if recipe.loss == "mse_months":  # the seed regresses raw months
        target_mean, target_std = 0.0, 1.0
    model = BoneAgeNet(recipe.use_sex, target_mean, target_std)
    if recipe.init == "imagenet":
        state = _imagenet_state_dict()
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        model.backbone.load_state_dict(state, strict=False)
    elif recipe.init != "random":
        checkpoint = load_checkpoint(recipe.init)
        model.backbone.load_state_dict(
            {k.removeprefix("backbone."): v for k, v in checkpoint["state_dict"].items() if k.startswith("backbone.")}
        )
    if recipe.freeze_backbone:
        for parameter in model.backbone.parameters():
            parameter.requires_grad = False
    return model


def _imagenet_state_dict() -> dict:
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    hub_dir = Path(torch.hub.get_dir()) / "checkpoints"
    try:
        return weights.get_state_dict(progress=True)
    except Exception as exc:  # URLError, OSError, RuntimeError: all mean "not available here"
        filename = Path(weights.url).name
        raise UserFacingError(
            f"ImageNet weights for ResNet-18 are not cached and could not be downloaded ({exc}). "
            f"Download {weights.url} and put it at {hub_dir / filename} "
            "(or set TORCH_HOME), or train with --init random."
        ) from exc


def save_checkpoint(path: Path, model: BoneAgeNet, metadata: dict) -> None:
    """Weights plus JSON-able metadata in one torch file, and the metadata again as
    <name>.json beside it so services can read it without torch."""
    path = Path(path)
    payload = {"format": CHECKPOINT_FORMAT, "state_dict": model.state_dict(), "metadata": json.dumps(metadata)}
    save_atomic(path, lambda tmp: torch.save(payload, tmp))
    write_text_atomic(path.with_suffix(".json"), json.dumps(metadata, indent=2))


def load_checkpoint(path: str | Path) -> dict:
    """{'state_dict', 'metadata'}; loads with weights_only=True so no code is unpickled."""
    path = Path(path)
    if not path.is_file():
        raise UserFacingError(f"model checkpoint {path} does not exist; train one with `boneage train`")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise UserFacingError(f"{path} is not a boneage checkpoint")
    return {"state_dict": payload["state_dict"], "metadata": json.loads(payload["metadata"])}


def model_from_checkpoint(path: str | Path) -> tuple[BoneAgeNet, dict]:
    checkpoint = load_checkpoint(path)
    recipe = Recipe.from_dict(checkpoint["metadata"]["recipe"])
    model = BoneAgeNet(recipe.use_sex)
    model.load_state_dict(checkpoint["state_dict"])
    model.recalibration = checkpoint["metadata"].get("recalibration")
    model.eval()
    return model, checkpoint["metadata"]


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
