"""torchvision architectures written by hand (torchvision is no dependency here), layer for
layer as torchvision builds them, without pretrained weights: EfficientNet-B0 (SiLU, squeeze
and excitation), MobileNetV3-Small (Hardswish, Hardsigmoid), ConvNeXt-Tiny (GELU, channels-last
LayerNorm), ViT-B/16 (``nn.MultiheadAttention``) and Swin-T (shifted windows: ``roll`` and an
attention mask). Factories take no arguments, for ``--model``; the ``tiny_*`` ones are the same
code at test sizes."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _divisible(value: float, divisor: int = 8) -> int:
    found = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return found + divisor if found < 0.9 * value else found


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, squeeze: int, activation: type[nn.Module], gate: type[nn.Module]):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(channels, squeeze, 1), nn.Conv2d(squeeze, channels, 1)
        self.activation, self.gate = activation(), gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.gate(self.fc2(self.activation(self.fc1(F.adaptive_avg_pool2d(x, 1)))))
        return x * scale


def _conv(c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1, act: type[nn.Module] | None = nn.SiLU):
    layers = [nn.Conv2d(c_in, c_out, k, stride, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out)]
    return nn.Sequential(*layers, *([act()] if act is not None else []))


class MBConv(nn.Module):
    """EfficientNet's and MobileNetV3's inverted residual with squeeze and excitation."""

    def __init__(self, c_in: int, expanded: int, c_out: int, k: int, stride: int, act: type[nn.Module],
                 se: int | None, gate: type[nn.Module]):
        super().__init__()
        layers = [] if expanded == c_in else [_conv(c_in, expanded, 1, act=act)]
        layers.append(_conv(expanded, expanded, k, stride, groups=expanded, act=act))
        if se:
            layers.append(SqueezeExcitation(expanded, se, act if act is nn.SiLU else nn.ReLU, gate))
        layers.append(_conv(expanded, c_out, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return out + x if self.residual else out


def efficientnet_b0(num_classes: int = 1000, width: float = 1.0, depth: float = 1.0) -> nn.Module:
    stages = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
              (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]
    c_in = _divisible(32 * width)
    layers = [_conv(3, c_in, 3, 2)]
    for expand, k, stride, channels, repeats in stages:
        c_out = _divisible(channels * width)
        for i in range(max(1, round(repeats * depth))):
            layers.append(MBConv(c_in, c_in * expand, c_out, k, stride if i == 0 else 1, nn.SiLU,
                                 max(1, c_in // 4), nn.Sigmoid))
            c_in = c_out
    head = 4 * c_in if width < 1 else 1280
    layers += [_conv(c_in, head, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(head, num_classes)]
    return nn.Sequential(*layers)


def mobilenet_v2(num_classes: int = 1000) -> nn.Module:
    stages = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    layers, c_in = [_conv(3, 32, 3, 2, act=nn.ReLU6)], 32
    for expand, channels, repeats, stride in stages:
        for i in range(repeats):
            layers.append(MBConv(c_in, c_in * expand, channels, 3, stride if i == 0 else 1, nn.ReLU6, None, nn.Sigmoid))
            c_in = channels
    layers += [_conv(c_in, 1280, 1, act=nn.ReLU6), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2),
               nn.Linear(1280, num_classes)]
    return nn.Sequential(*layers)


def mobilenet_v3_small(num_classes: int = 1000) -> nn.Module:
    relu, hs = nn.ReLU, nn.Hardswish
    config = [(16, 3, 16, 16, True, relu, 2), (16, 3, 72, 24, False, relu, 2), (24, 3, 88, 24, False, relu, 1),
              (24, 5, 96, 40, True, hs, 2), (40, 5, 240, 40, True, hs, 1), (40, 5, 240, 40, True, hs, 1),
              (40, 5, 120, 48, True, hs, 1), (48, 5, 144, 48, True, hs, 1), (48, 5, 288, 96, True, hs, 2),
              (96, 5, 576, 96, True, hs, 1), (96, 5, 576, 96, True, hs, 1)]
    layers = [_conv(3, 16, 3, 2, act=hs)]
    for c_in, k, expanded, c_out, se, act, stride in config:
        layers.append(MBConv(c_in, expanded, c_out, k, stride, act, _divisible(expanded // 4) if se else None,
                             nn.Hardsigmoid))
    layers += [_conv(96, 576, 1, act=hs), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(576, 1024), hs(),
               nn.Dropout(0.2), nn.Linear(1024, num_classes)]
    return nn.Sequential(*layers)


class LayerNorm2d(nn.LayerNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.scale = nn.Parameter(torch.full((dim, 1, 1), 1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.mlp(self.norm(self.dwconv(x).permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        return x + self.scale * out


def convnext_tiny(num_classes: int = 1000, depths=(3, 3, 9, 3), dims=(96, 192, 384, 768)) -> nn.Module:
    layers = [nn.Conv2d(3, dims[0], 4, 4), LayerNorm2d(dims[0], eps=1e-6)]
    for i, (depth, dim) in enumerate(zip(depths, dims)):
        if i:
            layers += [LayerNorm2d(dims[i - 1], eps=1e-6), nn.Conv2d(dims[i - 1], dim, 2, 2)]
        layers += [ConvNeXtBlock(dim) for _ in range(depth)]
    layers += [nn.AdaptiveAvgPool2d(1), LayerNorm2d(dims[-1], eps=1e-6), nn.Flatten(), nn.Linear(dims[-1], num_classes)]
    return nn.Sequential(*layers)


class EncoderBlock(nn.Module):
    def __init__(self, width: int, heads: int, mlp: int):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(width, eps=1e-6), nn.LayerNorm(width, eps=1e-6)
        self.self_attention = nn.MultiheadAttention(width, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(width, mlp), nn.GELU(), nn.Linear(mlp, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ln_1(x)
        x = x + self.self_attention(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class VisionTransformer(nn.Module):
    def __init__(self, image: int = 224, patch: int = 16, layers: int = 12, width: int = 768, heads: int = 12,
                 mlp: int = 3072, num_classes: int = 1000):
        super().__init__()
        self.patch, self.width = patch, width
        self.conv_proj = nn.Conv2d(3, width, patch, patch)
        self.class_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embedding = nn.Parameter(torch.randn(1, (image // patch) ** 2 + 1, width) * 0.02)
        self.layers = nn.Sequential(*[EncoderBlock(width, heads, mlp) for _ in range(layers)])
        self.ln = nn.LayerNorm(width, eps=1e-6)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embedding
        return self.head(self.ln(self.layers(x))[:, 0])


def vit_b_16() -> nn.Module:
    return VisionTransformer()


def tiny_vit() -> nn.Module:
    return VisionTransformer(image=32, patch=8, layers=2, width=32, heads=2, mlp=64, num_classes=10)


class WindowAttention(nn.Module):
    """Swin's shifted-window attention: windows of ``window`` x ``window`` tokens, a relative
    position bias, and for shifted blocks a roll of the map and a mask between regions."""

    def __init__(self, dim: int, heads: int, window: int, shift: int):
        super().__init__()
        self.heads, self.window, self.shift = heads, window, shift
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + window - 1
        self.register_buffer("bias_index", relative[..., 0] * (2 * window - 1) + relative[..., 1], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        w, s = self.window, self.shift if min(x.shape[1:3]) > self.window else 0
        if s:
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        windows = x.view(B, H // w, w, W // w, w, C).permute(0, 1, 3, 2, 4, 5).reshape(-1, w * w, C)
        qkv = self.qkv(windows).reshape(windows.shape[0], w * w, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = (q * (C // self.heads) ** -0.5) @ k.transpose(-2, -1)
        scores = scores + self.bias_table[self.bias_index.flatten()].view(w * w, w * w, -1).permute(2, 0, 1)
        if s:
            scores = scores.view(B, -1, self.heads, w * w, w * w) + self._mask(H, W, x.device)[None, :, None]
            scores = scores.view(-1, self.heads, w * w, w * w)
        out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(-1, w * w, C)
        out = self.proj(out).view(B, H // w, W // w, w, w, C).permute(0, 1, 3, 2, 4, 5).reshape(B, H, W, C)
        return torch.roll(out, shifts=(s, s), dims=(1, 2)) if s else out

    def _mask(self, H: int, W: int, device) -> torch.Tensor:
        w, s = self.window, self.shift
        region = torch.zeros(H, W, device=device)
        count = 0
        for rows in (slice(0, -w), slice(-w, -s), slice(-s, None)):
            for cols in (slice(0, -w), slice(-w, -s), slice(-s, None)):
                region[rows, cols] = count
                count += 1
        windows = region.view(H // w, w, W // w, w).permute(0, 2, 1, 3).reshape(-1, w * w)
        differs = windows[:, None, :] - windows[:, :, None]
        return differs.masked_fill(differs != 0, -100.0).masked_fill(differs == 0, 0.0)


class SwinBlock(nn.Module):
    def __init__(self, dim: int, heads: int, window: int, shift: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window, shift)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.norm, self.reduction = nn.LayerNorm(4 * dim), nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x))


class SwinTransformer(nn.Module):
    def __init__(self, depths=(2, 2, 6, 2), heads=(3, 6, 12, 24), dim: int = 96, window: int = 7,
                 num_classes: int = 1000):
        super().__init__()
        self.embed = nn.Conv2d(3, dim, 4, 4)
        self.embed_norm = nn.LayerNorm(dim)
        layers = []
        for i, (depth, head) in enumerate(zip(depths, heads)):
            if i:
                layers.append(PatchMerging(dim))
                dim *= 2
            layers += [SwinBlock(dim, head, window, 0 if j % 2 == 0 else window // 2) for j in range(depth)]
        self.layers = nn.Sequential(*layers)
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.embed_norm(self.embed(x).permute(0, 2, 3, 1)))
        return self.head(self.norm(x).mean((1, 2)))


def swin_t() -> nn.Module:
    return SwinTransformer()


def tiny_swin() -> nn.Module:
    return SwinTransformer(depths=(2,), heads=(2,), dim=16, window=4, num_classes=10)


def tiny_residual_stem() -> nn.Module:
    """A stem and two inverted residuals at test size: a first stage that sets M_R, for tiling."""
    return nn.Sequential(_conv(3, 8, 3, 2), MBConv(8, 24, 8, 3, 1, nn.ReLU6, None, nn.Sigmoid),
                         MBConv(8, 24, 16, 3, 2, nn.ReLU6, None, nn.Sigmoid), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(16, 10))
