"""CT-GLIP model: a 3D vision encoder from MONAI building blocks, mask pooling, projections.

Two encoder families as in the paper: a CNN (MONAI ``DynUNet``, the nnU-Net architecture,
whose highest-resolution decoder output is the feature map) and a ViT (MONAI ``ViT``,
its patch tokens laid back onto the patch grid). An organ embedding is the feature map
averaged inside the organ mask brought to the feature resolution; the text side projects
the cache's frozen text embeddings. Both are L2-normalised; the temperature is learnable.

Organ crops lose where they sat in the body (a left and a right kidney crop look alike,
while a whole-volume feature map knows). With ``position_features`` the crop's centre in
the scan (the cache's ``position``, -0.5..0.5 per RAS axis) is encoded by a small MLP and
added to the pooled features, giving back the context that cropping took away.

Pooling ``mean`` is CT-GLIP's masked average. It dilutes a focal finding (a 6 mm kidney
stone is a few cells of a kidney's feature map), so ``mean_max`` also concatenates the
masked maximum of each channel, where a small lesion's response survives.

The CNN's instance normalisation (nnU-Net's choice) divides out each crop's intensity
level, yet steatosis and emphysema *are* density changes (the emphysema index is the
fraction of lung below -950 HU). With ``density_bins`` > 0 the organ's own intensity
histogram inside its mask (soft bins over the window, log fractions) is encoded by a small
MLP and added to the pooled features, giving back the calibrated HU that normalisation
took away; a whole volume (global mode) gets the histogram of the whole volume. With
``density_source: "scan"`` that histogram is not taken from the crop but measured by the
cache on the organ's native voxels over a wide HU range (``PreprocessConfig.density_range``):
a crop shrunk to fit the aorta misses its 2-4 mm calcified plaques, and the window clips
calcium and contrast-filled lumen to the same value.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.nets import ViT, DynUNet
from torch import nn

from stages.common.errors import SetupError


class CNNEncoder(nn.Module):
    """nnU-Net (``DynUNet``) whose output layer emits ``feature_dim`` channels.

    ``strides[0] > 1`` makes the first block a strided stem, so the highest-resolution
    map is ``input / strides[0]`` (cheap enough for CPUs).
    """

    def __init__(self, filters: Sequence[int], strides: Sequence[int], feature_dim: int):
        super().__init__()
        if len(filters) != len(strides) or len(filters) < 3:
            raise SetupError(f"cnn encoder needs as many filters as strides (>= 3 levels), got {filters} and {strides}")
        self.net = DynUNet(spatial_dims=3, in_channels=1, out_channels=feature_dim,
                           kernel_size=[3] * len(filters), strides=list(strides),
                           upsample_kernel_size=list(strides[1:]), filters=list(filters),
                           norm_name=("INSTANCE", {"affine": True}), res_block=True)
        self.out_channels = feature_dim

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)


class ViTEncoder(nn.Module):
    """MONAI ``ViT``; the patch tokens are reshaped to a [C, d, h, w] feature map."""

    def __init__(self, input_size: Sequence[int], patch_size: int, hidden_size: int, num_layers: int,
                 num_heads: int, mlp_ratio: int = 4):
        super().__init__()
        if any(size % patch_size for size in input_size):
            raise SetupError(f"vit input size {tuple(input_size)} is not divisible by patch size {patch_size}")
        self.grid = tuple(size // patch_size for size in input_size)
        self.net = ViT(in_channels=1, img_size=tuple(input_size), patch_size=patch_size, hidden_size=hidden_size,
                       mlp_dim=hidden_size * mlp_ratio, num_layers=num_layers, num_heads=num_heads, qkv_bias=True)
        for block in self.net.blocks:
            # MONAI builds this norm even without cross-attention; unused parameters break DDP
            block.norm_cross_attn = nn.Identity()
        self.out_channels = hidden_size

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        tokens, _ = self.net(image)
        return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *self.grid)


def projection(in_dim: int, out_dim: int, hidden_dim: int) -> nn.Module:
    """Linear projection, or a two-layer MLP when ``hidden_dim`` > 0."""
    if hidden_dim <= 0:
        return nn.Linear(in_dim, out_dim)
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, out_dim))


POOLINGS = ("mean", "mean_max")


def masked_average(features: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Average of a [B, C, d, h, w] map inside a [B, 1, D, H, W] mask (None: everywhere).

    The mask is brought to the feature resolution as per-cell occupancy fractions, so a
    small organ still weighs the cells it partly covers instead of vanishing.
    """
    if mask is None:
        return features.mean(dim=(2, 3, 4))
    weights = F.adaptive_avg_pool3d(mask.to(features.dtype), features.shape[2:])
    total = weights.sum(dim=(2, 3, 4)).clamp(min=1e-6)
    return (features * weights).sum(dim=(2, 3, 4)) / total


def masked_max(features: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Per-channel maximum of a [B, C, d, h, w] map over the cells a [B, 1, D, H, W] mask touches."""
    if mask is None:
        return features.amax(dim=(2, 3, 4))
    touched = F.adaptive_max_pool3d(mask.to(features.dtype), features.shape[2:]) > 0
    return features.masked_fill(~touched, float("-inf")).amax(dim=(2, 3, 4))


def masked_histogram(image: torch.Tensor, mask: torch.Tensor | None, bins: int) -> torch.Tensor:
    """[B, 1, D, H, W] image in [0, 1] -> [B, bins]: log10 of the fraction of the mask's voxels
    in each bin, mapped to [0, 1] (1e-4 of the organ or less reads 0).

    Triangular soft bins with centres at 0, 1/(bins-1), ..., 1 sum to one for every voxel, so
    the fractions add up to one and clipped voxels (air, bone, stones) fall in the end bins.
    """
    position = image.float().flatten(1).clamp(0.0, 1.0) * (bins - 1)  # [B, N] in bin units
    weights = torch.ones_like(position) if mask is None else mask.flatten(1).to(position.dtype)
    lower = position.floor().clamp(max=bins - 2)
    upper_share = position - lower  # each voxel splits between its two nearest bin centres
    lower = lower.long()
    counts = torch.zeros(position.shape[0], bins, device=position.device, dtype=position.dtype)
    counts.scatter_add_(1, lower, (1.0 - upper_share) * weights).scatter_add_(1, lower + 1, upper_share * weights)
    return log_fractions(counts / weights.sum(dim=1, keepdim=True).clamp(min=1.0))


def log_fractions(fractions: torch.Tensor) -> torch.Tensor:
    """Histogram fractions -> log10 scale mapped to [0, 1] (1e-4 of the organ or less reads 0),
    so a few calcified voxels in thousands count as much as a shifted bulk."""
    return torch.log10(fractions.float().clamp(min=0.0) + 1e-4) / 4.0 + 1.0


DENSITY_SOURCES = ("crop", "scan")


class CTGlipModel(nn.Module):
    """Grounded image and text embeddings in one space, plus the learnable temperature.

    ``working_size``: the image is average-pooled to this edge before the encoder (a cheap
    stem for CPUs). Organ crops and whole volumes then cost the same per sample, which
    keeps the grounded-vs-global comparison at the same budget; None keeps full resolution.
    """

    def __init__(self, encoder: nn.Module, text_dim: int, embed_dim: int, working_size: int | None = None,
                 image_hidden: int = 0, text_hidden: int = 0, init_temperature: float = 0.07,
                 temperature_range: Sequence[float] = (0.01, 0.5), position_features: bool = False,
                 pooling: str = "mean", density_bins: int = 0, density_source: str = "crop"):
        super().__init__()
        low, high = temperature_range
        if not 0 < low <= init_temperature <= high:
            raise SetupError(f"temperature {init_temperature} must lie in the clamp range {tuple(temperature_range)}")
        if pooling not in POOLINGS:
            raise SetupError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        if density_bins == 1 or density_bins < 0:
            raise SetupError(f"density_bins must be 0 (off) or at least 2, got {density_bins}")
        if density_source not in DENSITY_SOURCES:
            raise SetupError(f"density_source must be one of {', '.join(DENSITY_SOURCES)}, got {density_source!r}")
        self.encoder = encoder
        self.pooling = pooling
        pooled_dim = encoder.out_channels * (2 if pooling == "mean_max" else 1)
        self.working_size = (working_size,) * 3 if working_size else None
        self.image_projection = projection(pooled_dim, embed_dim, image_hidden)
        self.text_projection = projection(text_dim, embed_dim, text_hidden)
        self.position_encoder = projection(3, pooled_dim, pooled_dim) if position_features else None
        self.density_bins, self.density_source = density_bins, density_source
        self.density_encoder = projection(density_bins, pooled_dim, pooled_dim) if density_bins else None
        self.log_logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)))
        self.logit_scale_range = (1.0 / high, 1.0 / low)

    @property
    def logit_scale(self) -> torch.Tensor:
        """1 / temperature, clamped to the configured range."""
        low, high = self.logit_scale_range
        return self.log_logit_scale.exp().clamp(min=low, max=high)

    @property
    def uses_position(self) -> bool:
        return self.position_encoder is not None

    @property
    def uses_scan_density(self) -> bool:
        return self.density_encoder is not None and self.density_source == "scan"

    def encode_image(self, image: torch.Tensor, mask: torch.Tensor | None = None,
                     position: torch.Tensor | None = None, density: torch.Tensor | None = None) -> torch.Tensor:
        """[B, 1, D, H, W] image (and organ mask; None = whole volume; [B, 3] crop position,
        required when the model uses positions; [B, bins] native density histogram, required
        when ``density_source`` is "scan") -> [B, P], L2-normalised."""
        if self.uses_scan_density:
            if density is None or density.shape[-1] != self.density_bins:
                raise ValueError(f"this model reads the cache's {self.density_bins}-bin organ density histograms; "
                                 "pass each sample's 'density' (rebuild a cache made before they existed)")
            density = log_fractions(density)
        elif self.density_encoder is not None:
            density = masked_histogram(image, mask, self.density_bins)
        else:
            density = None  # a model without density features ignores the cache's histograms
        if self.working_size is not None and tuple(image.shape[2:]) != self.working_size:
            image = F.adaptive_avg_pool3d(image, self.working_size)
        features = self.encoder(image)
        features = features.float()
        pooled = masked_average(features, mask)
        if self.pooling == "mean_max":
            pooled = torch.cat([pooled, masked_max(features, mask)], dim=1)
        if self.position_encoder is not None:
            if position is None:
                raise ValueError("this model was trained with organ positions; pass the crops' positions")
            pooled = pooled + self.position_encoder(position.to(pooled.dtype))
        if density is not None:
            pooled = pooled + self.density_encoder(density)
        return F.normalize(self.image_projection(pooled), dim=-1)

    def encode_text(self, text_embeddings: torch.Tensor) -> torch.Tensor:
        """[N, E] frozen text-encoder embeddings -> [N, P], L2-normalised."""
        return F.normalize(self.text_projection(text_embeddings), dim=-1)

    def forward(self, image: torch.Tensor, mask: torch.Tensor | None, text_embeddings: torch.Tensor,
                position: torch.Tensor | None = None,
                density: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Everything one training step needs, in one call so DDP sees every parameter used."""
        return (self.encode_image(image, mask, position, density), self.encode_text(text_embeddings),
                self.logit_scale)
