#!/usr/bin/env python3
"""Convert dlib's CNN face detector (MMOD) to safetensors.

Usage:
    python3 scripts/dlib_mmod_to_safetensors.py MODEL.dat OUT.safetensors

MODEL.dat is mmod_human_face_detector.dat (Davis King, CC0), the network of dlib's
dnn_mmod_face_detection_ex.cpp:

    downsampler = relu<affine<con5d<32, relu<affine<con5d<32, relu<affine<con5d<16, input>>>>>>>>>
    rcon5       = relu<affine<con5<45, SUBNET>>>
    net_type    = loss_mmod<con<1,9,9,1,1, rcon5<rcon5<rcon5<downsampler<
                      input_rgb_image_pyramid<pyramid_down<6>>>>>>>>

The file is parsed with numpy only (dlib is not imported); the layer readers are
dlib_face_resnet_to_safetensors.py's, written from reading dlib's serialization code.

Output tensors (float32, PyTorch layouts, every affine/BN folded into its conv):
    down.{0,1,2}.weight [16|32|32, Cin, 5, 5], down.{i}.bias   (stride 2, no padding, ReLU)
    body.{0,1,2}.weight [45, Cin, 5, 5],       body.{i}.bias   (stride 1, padding 2, ReLU)
    score.weight [1, 45, 9, 9], score.bias [1]                 (stride 1, padding 4)
__metadata__ holds loss_mmod's options (detector windows, thresholds, NMS overlaps) and the
input layer's means and pyramid paddings.
"""

import sys

import numpy as np

import dlib_format
from dlib_format import FormatError
from dlib_face_resnet_to_safetensors import (
    Reader, expect, read_affine, read_con, read_relu, read_trailer)

# (name, filters, kernel, stride) of each convolution in forward order; every one but the
# last is followed by an affine layer and a ReLU.
CONVS = [("down.0", 16, 5, 2), ("down.1", 32, 5, 2), ("down.2", 32, 5, 2),
         ("body.0", 45, 5, 1), ("body.1", 45, 5, 1), ("body.2", 45, 5, 1),
         ("score", 1, 9, 1)]


def forward_layer_list():
    seq = []
    for name, n, k, s in CONVS:
        seq.append(("con", dict(n=n, k=k, s=s, role=name)))
        if name != "score":
            seq += [("affine", dict(role=name)), ("relu", {})]
    return seq


def read_box_overlap(r, what):
    return r.real(what + " iou_thresh"), r.real(what + " percent_covered_thresh")


def read_loss(r):
    loss = r.string("loss layer")
    expect(loss == "loss_mmod_", f"expected loss_mmod_ (an MMOD detector), found {loss!r}")
    version = r.integer("mmod_options version")
    expect(1 <= version <= 4, f"unsupported mmod_options version {version}")
    windows = []
    if version == 1:
        windows.append((r.unsigned("window width"), r.unsigned("window height"), ""))
    else:
        for _ in range(r.unsigned("detector_windows size", 1 << 16)):
            v = r.integer("detector_window_details version")
            expect(v in (1, 2), f"unsupported detector_window_details version {v}")
            w, h = r.unsigned("window width"), r.unsigned("window height")
            windows.append((w, h, r.string("window label") if v == 2 else ""))
    options = dict(
        detector_windows=windows,
        loss_per_false_alarm=r.real("loss_per_false_alarm"),
        loss_per_missed_target=r.real("loss_per_missed_target"),
        truth_match_iou_threshold=r.real("truth_match_iou_threshold"),
        overlaps_nms=read_box_overlap(r, "overlaps_nms"),
        overlaps_ignore=read_box_overlap(r, "overlaps_ignore"),
        use_bounding_box_regression=False,
    )
    if version >= 3:
        expect(r.take(1, "assume_image_pyramid") == b"\x01",
               "assume_image_pyramid is not `yes`: not a pyramid detector")
    if version >= 4:
        options["use_bounding_box_regression"] = r.boolean("use_bounding_box_regression")
        r.real("bbr_lambda")
    expect(not options["use_bounding_box_regression"],
           "bounding box regression is not supported")
    expect(len(windows) == 1, f"{len(windows)} detector windows, expected 1 (faces)")
    return options


def read_input(r):
    name = r.string("input layer")
    expect(name in ("input_rgb_image_pyramid", "input_rgb_image_pyramid2"),
           f"expected input_rgb_image_pyramid, found {name!r}")
    means = [r.real("avg_red"), r.real("avg_green"), r.real("avg_blue")]
    padding, outer = 10, 11  # dlib's values for the first version
    if name == "input_rgb_image_pyramid2":
        padding, outer = r.unsigned("pyramid_padding"), r.unsigned("pyramid_outer_padding")
    return means, padding, outer


def parse(data):
    r = Reader(data)
    v = r.integer("add_loss_layer version")
    expect(v == 1, f"add_loss_layer version {v}, expected 1 (not a dlib dnn file?)")
    options = read_loss(r)
    layers = forward_layer_list()
    versions = [None] * len(layers)
    for idx in reversed(range(len(layers))):
        v = r.integer(f"version of layer {idx}")
        expect(v in ((2, 3) if idx == 0 else (1, 2)),
               f"layer {idx} ({layers[idx][0]}): unexpected wrapper version {v}")
        versions[idx] = v
    means, padding, outer = read_input(r)

    out, pending = {}, {}
    cin = 3
    for idx, (kind, info) in enumerate(layers):
        where = f"layer {idx} ({kind})"
        if kind == "con":
            w, b = read_con(r, info, where)
            expect(w.shape[1] == cin, f"{where}: {w.shape[1]} input channels, expected {cin}")
            cin = w.shape[0]
            if info["role"] == "score":
                out["score.weight"] = w.astype(np.float32)
                out["score.bias"] = b.astype(np.float32)
            else:
                pending[info["role"]] = (w, b)
        elif kind == "affine":
            w, b = pending.pop(info["role"])
            gamma, beta = read_affine(r, where)
            expect(gamma.size == w.shape[0], f"{where}: {gamma.size} channels, conv has {w.shape[0]}")
            # gamma*(conv(x,w)+b)+beta == conv(x, w*gamma) + (b*gamma+beta)
            out[info["role"] + ".weight"] = (w * gamma[:, None, None, None]).astype(np.float32)
            out[info["role"] + ".bias"] = (b * gamma + beta).astype(np.float32)
        elif kind == "relu":
            read_relu(r, where)
        read_trailer(r, versions[idx], idx == 0, where)
    expect(r.pos == len(data), f"{len(data) - r.pos} unexpected trailing bytes after the network")
    return out, options, means, padding, outer


def describe(parsed):
    tensors, options, means, padding, outer = parsed
    (width, height, label), = options["detector_windows"]
    meta = {
        "format": "dlib-mmod-v1",
        "source": "mmod_human_face_detector.dat (Davis King, CC0)",
        # Input: RGB, x = (pixel - mean_rgb) / 256, as a tiled pyramid_down<6> pyramid.
        "input_mean_rgb": ",".join(repr(float(np.float32(m))) for m in means),
        "input_scale": "0.00390625",
        "pyramid_down": "6",
        "pyramid_padding": str(padding),
        "pyramid_outer_padding": str(outer),
        "detector_window": f"{width}x{height}",
        "detector_label": label,
        # A location is a detection when its score exceeds this (to_label's default).
        "adjust_threshold": "0",
        "overlaps_nms_iou": repr(options["overlaps_nms"][0]),
        "overlaps_nms_percent_covered": repr(options["overlaps_nms"][1]),
        "overlaps_ignore_iou": repr(options["overlaps_ignore"][0]),
        "overlaps_ignore_percent_covered": repr(options["overlaps_ignore"][1]),
        "truth_match_iou_threshold": repr(options["truth_match_iou_threshold"]),
        "loss_per_false_alarm": repr(options["loss_per_false_alarm"]),
        "loss_per_missed_target": repr(options["loss_per_missed_target"]),
    }
    return tensors, meta


def main(argv):
    return dlib_format.convert(argv, "dlib MMOD detector", parse, describe)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
