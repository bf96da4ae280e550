#!/usr/bin/env python3
"""Write crates/wgnn-models/tests/fixtures/dlib_landmarks.json: dlib's own 5-point landmarks and face
chips for a few ORL faces, the reference for crates/wgnn-models/tests/face_landmarks.rs.

Usage (from the repository root, with a Python that has dlib, numpy and pillow):
    python3 scripts/make_landmark_fixture.py SHAPE_PREDICTOR_5.dat [ORL_DIR]

ORL_DIR defaults to ../shared/data/orl_faces; only s1-s30 are read.  Each case
is an image, a colour variant, a rectangle, dlib's 5 points for it, and dlib's
150x150 face chip (padding 0.25) summarised as its per-channel mean, the RGB
values at fixed sampled positions and its middle row and column.

Colour variants: "grey" is the PGM as R = G = B; "tinted" is
R = g, G = min(g + 40, 255), B = g // 2, so dlib reads the grey intensity
(R + G + B) // 3 rather than any one channel.  A suffix _xK enlarges the image
K times by repeating each pixel K x K times.
"""

import json
import os
import sys

import dlib
import numpy as np
from PIL import Image

CHIP_SIZE = 150
CHIP_PADDING = 0.25
# dlib rectangle (left, top, right, bottom), inclusive: the fixed fraction of a
# 92x112 ORL photo used as the face box.
ORL_RECT = (4, 30, 81, 106)

CASES = [
    # (identity, image, variant, rect)
    (1, 1, "grey", ORL_RECT),
    (3, 6, "grey", ORL_RECT),
    (7, 2, "grey", ORL_RECT),
    (11, 9, "grey", ORL_RECT),
    (15, 4, "grey", ORL_RECT),
    (19, 10, "grey", ORL_RECT),
    (24, 3, "grey", ORL_RECT),
    (30, 7, "grey", ORL_RECT),
    (13, 5, "tinted", ORL_RECT),
    (27, 8, "tinted", ORL_RECT),
    (8, 1, "grey", (10, 25, 75, 100)),
    # Enlarged photos: the chip then shrinks the face, and dlib halves the image
    # with its pyramid first (once for x4, twice for x9).
    (2, 4, "grey_x4", tuple(4 * v for v in ORL_RECT)),
    (21, 6, "tinted_x4", tuple(4 * v for v in ORL_RECT)),
    (16, 2, "grey_x9", tuple(9 * v for v in ORL_RECT)),
]


def variant_rgb(grey, variant):
    variant, _, factor = variant.partition("_x")
    factor = int(factor or 1)
    g = grey.astype(np.int32).repeat(factor, 0).repeat(factor, 1)
    if variant == "grey":
        channels = [g, g, g]
    elif variant == "tinted":
        channels = [g, np.minimum(g + 40, 255), g // 2]
    else:
        raise ValueError(variant)
    return np.ascontiguousarray(np.stack(channels, -1).astype(np.uint8))


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    predictor = dlib.shape_predictor(argv[1])
    orl = argv[2] if len(argv) == 3 else "../shared/data/orl_faces"
    rng = np.random.default_rng(5)
    positions = [[int(y), int(x)] for y, x in rng.integers(0, CHIP_SIZE, size=(64, 2))]
    cases = []
    for identity, image, variant, rect in CASES:
        assert 1 <= identity <= 30, "s31-s40 are held out"
        path = os.path.join(orl, f"s{identity}", f"{image}.pgm")
        rgb = variant_rgb(np.array(Image.open(path)), variant)
        det = predictor(rgb, dlib.rectangle(*rect))
        chip = dlib.get_face_chip(rgb, det, size=CHIP_SIZE, padding=CHIP_PADDING)
        assert chip.shape == (CHIP_SIZE, CHIP_SIZE, 3)
        middle = CHIP_SIZE // 2
        cases.append({
            "image": f"s{identity}/{image}.pgm",
            "variant": variant,
            "rect": list(rect),
            "points": [[p.x, p.y] for p in det.parts()],
            "chip_mean": [float(m) for m in chip.reshape(-1, 3).mean(0)],
            "chip_samples": [chip[y, x].tolist() for y, x in positions],
            "chip_middle_row": chip[middle].tolist(),
            "chip_middle_column": chip[:, middle].tolist(),
        })
    fixture = {
        "source": "dlib " + dlib.__version__ + ", shape_predictor_5_face_landmarks.dat, get_face_chip",
        "chip_size": CHIP_SIZE,
        "chip_padding": CHIP_PADDING,
        "chip_positions_yx": positions,
        "cases": cases,
    }
    out = os.path.join("crates", "wgnn-models", "tests", "fixtures", "dlib_landmarks.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {out} ({len(cases)} cases)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
