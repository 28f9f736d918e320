"""A small raster canvas and PNG writer (NumPy, zlib and struct only) for graphc's plots.

matplotlib is not a graphc dependency, so training curves and model diagrams are drawn here:
lines (with width), rectangles, triangles and text in a built-in 5x8 bitmap font (ASCII,
drawn for graphc; unknown characters show as ``?``), scaled by whole pixels and optionally
rotated a quarter turn. :func:`write_png` writes an 8-bit RGB PNG.
"""
from __future__ import annotations

import struct
import zlib
from typing import Sequence

import numpy as np

Color = tuple[int, int, int]

# Each glyph: its character, then 8 rows of 5 pixels, each row one base-32 digit (bit 4 = left).
_FONT_DATA = (
    '0ehjlphe014c4444e02eh1248v03v2421he0426aiv2205vgu11he0668guhhe07v12488808ehhehhe09ehhf12c0'
    'Aehhvhhh0Buhhuhhu0Cehggghe0Dsihhhis0Evgguggv0Fvgguggg0Gehgnhhf0Hhhhvhhh0Ie44444e0J72222ic0'
    'Khikokih0Lggggggv0Mhrllhhh0Nhhpljhh0Oehhhhhe0Puhhuggg0Qehhhlid0Ruhhukih0Sfgge11u0Tv4444440'
    'Uhhhhhhe0Vhhhhha40Whhhllla0Xhha4ahh0Yhha44440Zv1248gv0a00e1fhf0bggmphhu0c00egghe0d11djhhf0'
    'e00ehvge0f698s8880g00fhhf1ehggmphhh0i40c444e0j206222ickggikoki0lc44444e0m00qllll0n00mphhh0'
    'o00ehhhe0p00uhhuggq00fhhf11r00mpggg0s00ege1u0t88s88960u00hhhjd0v00hhha40w00hhlla0x00ha4ah0'
    'y00hhhf1ez00v248v0 00000000.00000cc0,0000c480-000e0000_0000000v:0cc0cc00;0cc0c480(24888420'
    ")84222480[e88888e0]e22222e0/01248g00%op248j30+044v4400=00v0v000>84212480<248g8420'44800000"
    '"aa000000?eh124040!44444040*04lel400#aavavaa0'
)
_DIGITS = "0123456789abcdefghijklmnopqrstuv"
GLYPH_W, GLYPH_H, ADVANCE = 5, 8, 6


def _parse_font() -> dict[str, np.ndarray]:
    glyphs = {}
    for i in range(0, len(_FONT_DATA), 9):
        ch, rows = _FONT_DATA[i], _FONT_DATA[i + 1:i + 9]
        bits = [[(_DIGITS.index(r) >> (4 - c)) & 1 for c in range(GLYPH_W)] for r in rows]
        glyphs[ch] = np.array(bits, dtype=bool)
    return glyphs


_GLYPHS = _parse_font()


def text_mask(text: str, scale: int = 1) -> np.ndarray:
    """A boolean image of ``text`` (height ``8 * scale``)."""
    mask = np.zeros((GLYPH_H, max(len(text) * ADVANCE - 1, 1)), dtype=bool)
    for i, ch in enumerate(text):
        mask[:, i * ADVANCE:i * ADVANCE + GLYPH_W] = _GLYPHS.get(ch, _GLYPHS["?"])
    return np.kron(mask, np.ones((scale, scale), dtype=bool)) if scale > 1 else mask


def text_size(text: str, scale: int = 1) -> tuple[int, int]:
    """``(width, height)`` in pixels of ``text`` at ``scale``."""
    return (max(len(text) * ADVANCE - 1, 1) * scale, GLYPH_H * scale)


class Canvas:
    """An RGB image to draw on; coordinates are pixels, x to the right, y down."""

    def __init__(self, width: int, height: int, background: Color = (255, 255, 255)):
        self.width, self.height = int(width), int(height)
        self.pixels = np.empty((self.height, self.width, 3), dtype=np.uint8)
        self.pixels[:] = background

    def _plot(self, xs: np.ndarray, ys: np.ndarray, color: Color) -> None:
        keep = (xs >= 0) & (xs < self.width) & (ys >= 0) & (ys < self.height)
        self.pixels[ys[keep], xs[keep]] = color

    def line(self, x0: float, y0: float, x1: float, y1: float, color: Color, width: int = 1,
             dash: int = 0) -> None:
        """A straight line ``width`` pixels thick; ``dash > 0`` draws dashes of that length."""
        n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
        t = np.linspace(0.0, 1.0, n)
        if dash:
            t = t[(np.arange(n) // dash) % 2 == 0]
        xs = np.rint(x0 + (x1 - x0) * t).astype(int)
        ys = np.rint(y0 + (y1 - y0) * t).astype(int)
        lo = -((width - 1) // 2)
        for dx in range(lo, lo + width):
            for dy in range(lo, lo + width):
                self._plot(xs + dx, ys + dy, color)

    def polyline(self, points: Sequence[tuple[float, float]], color: Color, width: int = 1, dash: int = 0) -> None:
        """Connected line segments through ``points``."""
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            self.line(x0, y0, x1, y1, color, width, dash)

    def rect(self, x0: float, y0: float, x1: float, y1: float, outline: Color | None = (0, 0, 0),
             fill: Color | None = None, width: int = 1) -> None:
        """An axis-aligned rectangle with corners ``(x0, y0)`` and ``(x1, y1)``."""
        x0, x1 = sorted((int(round(x0)), int(round(x1))))
        y0, y1 = sorted((int(round(y0)), int(round(y1))))
        if fill is not None:
            self.pixels[max(y0, 0):max(min(y1 + 1, self.height), 0), max(x0, 0):max(min(x1 + 1, self.width), 0)] = fill
        if outline is not None:
            for k in range(width):
                self.line(x0 + k, y0, x0 + k, y1, outline)
                self.line(x1 - k, y0, x1 - k, y1, outline)
                self.line(x0, y0 + k, x1, y0 + k, outline)
                self.line(x0, y1 - k, x1, y1 - k, outline)

    def triangle(self, pts: Sequence[tuple[float, float]], color: Color) -> None:
        """A filled triangle."""
        (ax, ay), (bx, by), (cx, cy) = pts
        x0, x1 = int(np.floor(min(ax, bx, cx))), int(np.ceil(max(ax, bx, cx)))
        y0, y1 = int(np.floor(min(ay, by, cy))), int(np.ceil(max(ay, by, cy)))
        yy, xx = np.mgrid[y0:y1 + 1, x0:x1 + 1]

        def side(px, py, qx, qy):
            return (xx - qx) * (py - qy) - (px - qx) * (yy - qy)
        d1, d2, d3 = side(ax, ay, bx, by), side(bx, by, cx, cy), side(cx, cy, ax, ay)
        inside = ~(((d1 < 0) | (d2 < 0) | (d3 < 0)) & ((d1 > 0) | (d2 > 0) | (d3 > 0)))
        self._plot(xx[inside], yy[inside], color)

    def text(self, x: float, y: float, text: str, color: Color = (0, 0, 0), scale: int = 1,
             anchor: str = "lt", rotate: bool = False) -> None:
        """Draw ``text``; ``anchor`` is two letters: l/c/r for x and t/m/b for y (the point
        ``(x, y)`` is that corner or middle of the text box). ``rotate`` turns it to read upwards."""
        mask = text_mask(text, scale)
        if rotate:
            mask = np.rot90(mask)
        h, w = mask.shape
        left = int(round(x - {"l": 0, "c": w / 2, "r": w}[anchor[0]]))
        top = int(round(y - {"t": 0, "m": h / 2, "b": h}[anchor[1]]))
        ys, xs = np.nonzero(mask)
        self._plot(xs + left, ys + top, color)

    def save(self, path: str) -> None:
        """Write the canvas as a PNG file."""
        write_png(path, self.pixels)


def encode_png(pixels: np.ndarray) -> bytes:
    """The bytes of an 8-bit RGB (``(h, w, 3)``) or grayscale (``(h, w)``) PNG."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    if pixels.ndim == 2:
        color_type, h, w = 0, *pixels.shape
    elif pixels.ndim == 3 and pixels.shape[2] == 3:
        color_type, h, w = 2, pixels.shape[0], pixels.shape[1]
    else:
        raise ValueError(f"encode_png: expected an (h, w) or (h, w, 3) array, got shape {pixels.shape}")
    raw = np.concatenate([np.zeros((h, 1), np.uint8), pixels.reshape(h, -1)], axis=1).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6))
            + chunk(b"IEND", b""))


def write_png(path: str, pixels: np.ndarray) -> None:
    """Write an image array to ``path`` as PNG."""
    data = encode_png(pixels)
    with open(path, "wb") as f:
        f.write(data)


def read_png(path: str) -> np.ndarray:
    """Read back a PNG written by :func:`write_png` (8-bit, no interlace; all five row filters)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG file")
    pos, idat, meta = 8, b"", None
    while pos < len(data):
        (n,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            meta = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    if meta is None or meta[2] != 8 or meta[3] not in (0, 2) or meta[6] != 0:
        raise ValueError(f"{path}: only 8-bit gray/RGB non-interlaced PNGs are supported")
    w, h, channels = meta[0], meta[1], 3 if meta[3] == 2 else 1
    stride = w * channels
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, stride + 1)
    out = np.zeros((h, stride), np.int32)
    for r in range(h):
        f, row = raw[r, 0], raw[r, 1:].astype(np.int32)
        prev = out[r - 1] if r else np.zeros(stride, np.int32)
        if f == 0:
            out[r] = row
        elif f == 2:
            out[r] = (row + prev) % 256
        else:
            cur = np.zeros(stride, np.int32)
            for i in range(stride):
                a = cur[i - channels] if i >= channels else 0
                b, c = prev[i], prev[i - channels] if i >= channels else 0
                pred = {1: a, 3: (a + b) // 2}.get(int(f))
                if pred is None:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                cur[i] = (row[i] + pred) % 256
            out[r] = cur
    return out.astype(np.uint8).reshape((h, w, 3) if channels == 3 else (h, w))
