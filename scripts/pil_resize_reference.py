"""Prints the PIL (Pillow) bilinear-resize expectations used by crates/wgnn-models/tests/imaging/resize.rs.

Run with Pillow and numpy installed: python3 scripts/pil_resize_reference.py
The synthetic inputs are defined by formulas that the Rust tests reproduce.
"""
import os

import numpy as np
from PIL import Image

ASSETS = os.path.join(os.path.dirname(__file__), "..", "assets")


def pattern_u8(w, h):
    """8-bit RGB test pattern, interleaved HWC: the same formula as `pattern_u8` in the tests."""
    a = np.zeros((h, w, 3), np.uint8)
    for y in range(h):
        for x in range(w):
            for c in range(3):
                a[y, x, c] = (x * 37 + y * 91 + c * 53 + (x * y * 7) % 23 * 11) % 256
    return a


def pattern_f32(w, h, c):
    """Float plane for channel c (the same formula as `pattern_f32` in the tests)."""
    a = np.zeros((h, w), np.float32)
    for y in range(h):
        for x in range(w):
            a[y, x] = np.float32(((x * 13 + y * 29 + c * 7) % 17) / 16.0 - 0.1 * c)
    return a


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def rust_u8(values):
    return "[" + ", ".join(str(int(v)) for v in values) + "]"


def rust_f32(values):
    return "[" + ", ".join(str(np.float32(v)) for v in values) + "]"


print("// 8-bit pattern 7x5 (interleaved RGB) resized to (width, height)")
for size in [(3, 4), (9, 7), (7, 3), (2, 5), (1, 1)]:
    out = np.asarray(Image.fromarray(pattern_u8(7, 5), "RGB").resize(size, Image.BILINEAR))
    print(size, rust_u8(out.reshape(-1)))

print("// float pattern 6x5 (one mode-F image per channel) resized to (width, height)")
for size in [(4, 3), (8, 7)]:
    planes = [np.asarray(Image.fromarray(pattern_f32(6, 5, c), "F").resize(size, Image.BILINEAR))
              for c in range(3)]
    print(size, rust_f32(np.concatenate([p.reshape(-1) for p in planes])))

for name in ["chelsea.png", "coffee.png"]:
    image = Image.open(os.path.join(ASSETS, name)).convert("RGB")
    out = np.asarray(image.resize((227, 227), Image.BILINEAR))
    data = out.reshape(-1).tobytes()
    print(name, "227x227 interleaved RGB: sum", int(out.sum()), "fnv1a64 %#018x" % fnv1a64(data))
