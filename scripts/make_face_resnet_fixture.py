#!/usr/bin/env python3
"""Writes the face ResNet's known answer for crates/wgnn-models/tests/face_resnet.rs: the face in
assets/astronaut.png as dlib aligns it (150x150 chip, PNG) and dlib's own 128-value
descriptor of that chip (JSON). Needs the `dlib` package (PyPI dlib or dlib-bin), numpy and
pillow, and dlib's model files (PyPI face_recognition_models, CC0).

    python3 scripts/make_face_resnet_fixture.py MODELS_DIR
"""
import json
import sys

import dlib
import numpy as np
from PIL import Image


def main(models):
    image = np.array(Image.open("assets/astronaut.png").convert("RGB"))
    faces = dlib.get_frontal_face_detector()(image, 1)
    if not faces:
        sys.exit("no face found in assets/astronaut.png")
    face = max(faces, key=lambda r: r.area())  # the astronaut's, not a small false one
    shape = dlib.shape_predictor(f"{models}/shape_predictor_5_face_landmarks.dat")(image, face)
    chip = dlib.get_face_chip(image, shape, size=150, padding=0.25)
    Image.fromarray(chip).save("crates/wgnn-models/tests/fixtures/astronaut_face_chip.png")
    net = dlib.face_recognition_model_v1(f"{models}/dlib_face_recognition_resnet_model_v1.dat")
    descriptor = [float(v) for v in net.compute_face_descriptor(chip)]
    with open("crates/wgnn-models/tests/fixtures/astronaut_face_descriptor.json", "w") as f:
        json.dump({"chip": "tests/fixtures/astronaut_face_chip.png",
                   "dlib_version": dlib.__version__, "descriptor": descriptor}, f)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "face_recognition_models/models")
