#!/usr/bin/env python3
"""dlib's CNN face detector on a few photos, for crates/wgnn-models/tests/face_detection.rs.

Usage (with the dlib Python package, e.g. dlib-bin 20):
    python3 scripts/make_mmod_fixture.py MODEL.dat ORL_DIR OUT.json

MODEL.dat is mmod_human_face_detector.dat.  Cases: ORL photos of s1-s30 enlarged twice by
repeating each pixel 2x2 (92x112 -> 184x224, grey as R = G = B); one at its own size; mosaics
of several ORL photos (`rows`: the photos of a row side by side, the rows one below the other,
each photo enlarged `scale` times), which give several faces and exercise the non-maximum
suppression; ORL photos resized to 184x224 by PIL's bilinear filter (`resize`, as wgnn's
`imaging::resize::resize_exact` does); and assets/astronaut.png.  Each case records the boxes (dlib rectangles: left,
top, right, bottom, inclusive) and the confidences that
`cnn_face_detection_model_v1(MODEL)(image, 0)` returns, in its order.
"""

import json
import sys

import dlib
import numpy as np
from PIL import Image

ORL_CASES = ["s1/1.pgm", "s4/5.pgm", "s8/3.pgm", "s12/7.pgm", "s15/10.pgm", "s19/2.pgm",
             "s24/8.pgm", "s30/4.pgm"]


# (rows of ORL photos, scale) of the mosaics.
MOSAICS = [([["s2/1.pgm", "s3/1.pgm", "s6/2.pgm"]], 2),
           ([["s2/1.pgm", "s3/1.pgm"], ["s6/1.pgm", "s7/1.pgm"]], 1)]

# ORL photos resized to this size with PIL's bilinear filter.
RESIZED = ["s4/6.pgm", "s25/5.pgm", "s23/9.pgm"]
RESIZE = (184, 224)


def detections(detector, rgb):
    out = detector(np.ascontiguousarray(rgb), 0)
    return {
        "boxes": [[d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()] for d in out],
        "confidences": [d.confidence for d in out],
    }


def main(argv):
    if len(argv) != 4:
        print(f"usage: {argv[0]} MODEL.dat ORL_DIR OUT.json", file=sys.stderr)
        return 2
    model, orl, dst = argv[1:]
    detector = dlib.cnn_face_detection_model_v1(model)
    cases = []
    mosaics = [([[name]], 2) for name in ORL_CASES] + [([["s1/1.pgm"]], 1)] + MOSAICS
    for rows, scale in mosaics:
        grey = np.concatenate([
            np.concatenate([np.array(Image.open(f"{orl}/{name}")) for name in row], axis=1)
            for row in rows], axis=0)
        grey = np.repeat(np.repeat(grey, scale, axis=0), scale, axis=1)
        case = {"rows": rows, "scale": scale}
        case.update(detections(detector, np.stack([grey] * 3, axis=-1)))
        cases.append(case)
    for name in RESIZED:
        image = Image.open(f"{orl}/{name}").convert("RGB").resize(RESIZE, Image.BILINEAR)
        case = {"rows": [[name]], "scale": 1, "resize": list(RESIZE)}
        case.update(detections(detector, np.array(image)))
        cases.append(case)
    rgb = np.array(Image.open("assets/astronaut.png").convert("RGB"))
    case = {"image": "assets/astronaut.png", "scale": 1}
    case.update(detections(detector, rgb))
    cases.append(case)
    with open(dst, "w") as f:
        # One case a line.
        f.write(f'{{"dlib_version": {json.dumps(dlib.__version__)}, "upsample": 0, "cases": [\n')
        f.write(",\n".join(json.dumps(case) for case in cases))
        f.write("\n]}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
