"""Rendering of the `glyphs` benchmark: look-alike characters, distorted and cluttered.

Each class is one character; each image is that character in one of matplotlib's DejaVu fonts
(Sans, Serif, Sans Mono; regular, bold, oblique, bold oblique), placed on a common baseline (so
`o` stays smaller than `O`), then warped (rotation, scale, shear, shift and a smooth elastic
field), coloured on a coloured background, crossed by random strokes and a fragment of another
character, and noised. All randomness comes from one seeded numpy generator and the warping is
float64 numpy, so the bytes depend only on the seed, numpy, Pillow's FreeType (glyph outlines
to pixels) and matplotlib's font files; `glyphs.py` records those versions in the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

# Look-alike groups: 0 O o Q D / 1 l I i j / 5 S s / 2 Z z / 8 B / 6 b G / 9 g q / c C e / ...
CHARACTERS = "0123456789OQDCGBSZIoaegqbdplszcunvrhkxy"
FONT_FILES = tuple(
    f"DejaVu{family}{style}.ttf"
    for family in ("Sans", "Serif", "SansMono")
    for style in ("", "-Bold", "-Oblique" if family != "Serif" else "-Italic",
                  "-BoldOblique" if family != "Serif" else "-BoldItalic")
)
CANVAS = 64  # glyph masks are rendered at CANVAS x CANVAS, then warped down to the image size
FONT_PX = 46  # font size on the canvas: capitals ~34 px tall, x-height ~25 px
BASELINE = 52  # canvas row of the baseline: every character sits on the same line


@dataclass(frozen=True)
class Distortion:
    """The ranges every image draws from (uniform unless said otherwise)."""

    rotate_deg: float = 10.0  # +-
    scale: tuple[float, float] = (0.9, 1.15)
    shear: float = 0.2  # +-
    shift: float = 0.14  # +-, fraction of the half-width
    elastic: float = 0.05  # sd of the coarse displacement field, fraction of the half-width
    min_contrast: float = 0.4  # |luma(fg) - luma(bg)| at least this
    strokes: int = 1  # random lines through each image
    noise: tuple[float, float] = (0.01, 0.06)  # sd of the Gaussian pixel noise, 0..1 scale


def font_folder() -> Path:
    """matplotlib's bundled TrueType fonts (installed with matplotlib: no download)."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@cache
def glyph_masks() -> np.ndarray:
    """float64 [fonts, classes, CANVAS, CANVAS] coverage in 0..1, one per font and character."""
    from PIL import Image, ImageDraw, ImageFont

    masks = np.zeros((len(FONT_FILES), len(CHARACTERS), CANVAS, CANVAS))
    for f, name in enumerate(FONT_FILES):
        font = ImageFont.truetype(str(font_folder() / name), FONT_PX)
        for c, char in enumerate(CHARACTERS):
            canvas = Image.new("L", (CANVAS, CANVAS), 0)
            width = font.getlength(char)
            ImageDraw.Draw(canvas).text(((CANVAS - width) / 2, BASELINE), char, fill=255,
                                        font=font, anchor="ls")
            masks[f, c] = np.asarray(canvas, dtype=np.float64) / 255.0
    return masks


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres of a size x size image in [-1, 1] (x: columns, y: rows)."""
    axis = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    return np.meshgrid(axis, axis)


def _upsample(coarse: np.ndarray, size: int) -> np.ndarray:
    """[B, k, k] -> [B, size, size] bilinear, a smooth field from a few random values."""
    k = coarse.shape[-1]
    pos = np.linspace(0, k - 1, size)
    i0 = np.clip(np.floor(pos).astype(int), 0, k - 2)
    w = pos - i0
    rows = coarse[:, i0] * (1 - w)[None, :, None] + coarse[:, i0 + 1] * w[None, :, None]
    return rows[:, :, i0] * (1 - w) + rows[:, :, i0 + 1] * w


def _bilinear(images: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sample [B, H, W] at canvas coordinates x, y in [-1, 1] (zero outside)."""
    n, size = images.shape[0], images.shape[-1]
    px, py = (x + 1) * size / 2 - 0.5, (y + 1) * size / 2 - 0.5
    x0, y0 = np.floor(px).astype(int), np.floor(py).astype(int)
    wx, wy = px - x0, py - y0
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)))
    b = np.arange(n)[:, None, None]
    out = np.zeros_like(px)
    for dy, dx, w in ((0, 0, (1 - wx) * (1 - wy)), (0, 1, wx * (1 - wy)),
                      (1, 0, (1 - wx) * wy), (1, 1, wx * wy)):
        ys = np.clip(y0 + dy + 1, 0, size + 1)
        xs = np.clip(x0 + dx + 1, 0, size + 1)
        out += padded[b, ys, xs] * w
    return out


def _warp(masks: np.ndarray, size: int, d: Distortion, rng: np.random.Generator,
          offset: np.ndarray | None = None) -> np.ndarray:
    """Each mask under its own random affine + elastic map, sampled at 2x and averaged down."""
    n, fine = masks.shape[0], 2 * size
    gx, gy = _grid(fine)
    angle = np.deg2rad(rng.uniform(-d.rotate_deg, d.rotate_deg, n))
    scale = rng.uniform(*d.scale, n)
    shear = rng.uniform(-d.shear, d.shear, n)
    shift = rng.uniform(-d.shift, d.shift, (2, n))
    if offset is not None:
        shift = shift + offset
    dx = _upsample(rng.normal(0, d.elastic, (n, 4, 4)), fine)
    dy = _upsample(rng.normal(0, d.elastic, (n, 4, 4)), fine)
    # inverse map: output pixel -> canvas point (rotate, shear, scale about the centre)
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    u = gx[None] - shift[0][:, None, None] + dx
    v = gy[None] - shift[1][:, None, None] + dy
    sx = (cos * u + sin * v) / scale[:, None, None]
    sy = (-sin * u + cos * v) / scale[:, None, None]
    sx = sx + shear[:, None, None] * sy
    sampled = _bilinear(masks, sx, sy)
    return sampled.reshape(n, size, 2, size, 2).mean(axis=(2, 4))


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114])


def _colours(n: int, d: Distortion, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(background, foreground) [n, 3] in 0..1 whose luma differ by at least min_contrast."""
    bg, fg = rng.uniform(0, 1, (n, 3)), rng.uniform(0, 1, (n, 3))
    for _ in range(64):  # redraw the foreground of pairs too close in luma
        bad = np.abs(_luma(fg) - _luma(bg)) < d.min_contrast
        if not bad.any():
            break
        fg[bad] = rng.uniform(0, 1, (int(bad.sum()), 3))
    bad = np.abs(_luma(fg) - _luma(bg)) < d.min_contrast
    fg[bad] = np.where(_luma(bg[bad])[:, None] > 0.5, 0.0, 1.0)  # black or white then
    return bg, fg


def _strokes(n: int, size: int, d: Distortion, rng: np.random.Generator) -> np.ndarray:
    """[n, size, size] alpha of d.strokes random straight lines (1-2 px wide) per image."""
    gx, gy = _grid(size)
    alpha = np.zeros((n, size, size))
    for _ in range(d.strokes):
        a, b = rng.uniform(-1.2, 1.2, (2, n, 2))
        width = rng.uniform(0.5, 1.2, n) * 2.0 / size
        ab = b - a
        t = ((gx[None] - a[:, 0, None, None]) * ab[:, 0, None, None]
             + (gy[None] - a[:, 1, None, None]) * ab[:, 1, None, None])
        t = np.clip(t / (ab ** 2).sum(1)[:, None, None].clip(1e-9), 0, 1)
        px = a[:, 0, None, None] + t * ab[:, 0, None, None] - gx[None]
        py = a[:, 1, None, None] + t * ab[:, 1, None, None] - gy[None]
        dist = np.sqrt(px ** 2 + py ** 2)
        alpha = np.maximum(alpha, np.clip(1.0 - dist / width[:, None, None], 0, 1))
    return alpha


def render(labels: np.ndarray, size: int, rng: np.random.Generator,
           d: Distortion = Distortion()) -> np.ndarray:
    """uint8 [n, 3, size, size] images of the characters CHARACTERS[labels]."""
    masks = glyph_masks()
    n = len(labels)
    fonts = rng.integers(0, len(FONT_FILES), n)
    glyph = _warp(masks[fonts, labels], size, d, rng)
    # a fragment of another character, pushed mostly out of the frame
    others = rng.integers(0, len(CHARACTERS), n)
    side = rng.choice([-1.0, 1.0], (2, n)) * rng.uniform(0.8, 1.1, (2, n))
    fragment = _warp(masks[rng.integers(0, len(FONT_FILES), n), others], size, d, rng, side)
    bg, fg = _colours(n, d, rng)
    clutter = rng.uniform(0, 1, (n, 2, 3))  # colours of the fragment and of the strokes
    img = np.broadcast_to(bg[:, :, None, None], (n, 3, size, size)).copy()
    for alpha, colour in ((0.5 * fragment, clutter[:, 0]),
                          (0.8 * _strokes(n, size, d, rng), clutter[:, 1]),
                          (glyph, fg)):
        img = img * (1 - alpha[:, None]) + colour[:, :, None, None] * alpha[:, None]
    img = img + rng.normal(0, 1, img.shape) * rng.uniform(*d.noise, n)[:, None, None, None]
    return np.rint(np.clip(img, 0, 1) * 255).astype(np.uint8)
