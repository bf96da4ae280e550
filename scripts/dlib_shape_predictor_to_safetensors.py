#!/usr/bin/env python3
"""Convert a dlib shape predictor (ensemble of regression trees) to safetensors.

Usage:
    python3 scripts/dlib_shape_predictor_to_safetensors.py MODEL.dat OUT.safetensors

MODEL.dat is e.g. shape_predictor_5_face_landmarks.dat (Davis King, CC0).  The
file is parsed with numpy only (dlib is not imported); the parser was written
from reading dlib/image_processing/shape_predictor.h and dlib/serialize.h.

The .dat stream (shape_predictor.h, deserialize):
    int version (must be 1)
    matrix<float,0,1> initial_shape        [2L] as x0, y0, x1, y1, ...
    vector<vector<regression_tree>> forests per cascade level, per tree:
        vector<split_feature> splits         each: idx1, idx2 (integers), thresh (float)
        vector<matrix<float,0,1>> leaf_values
    vector<vector<unsigned long>> anchor_idx per cascade level, per feature pixel
    vector<vector<vector<float,2>>> deltas   per cascade level, per feature pixel (x, y)

Output tensors (C cascades, T trees per cascade, S = 2^depth - 1 splits per
tree, 2^depth leaves, P feature pixels per cascade, L landmarks):
    initial_shape [L, 2] f32         in the unit box (0,0)-(1,1) of the face rectangle
    anchor_idx    [C, P] i32         landmark each feature pixel is attached to
    deltas        [C, P, 2] f32      offset from that landmark in the initial shape
    split_idx1    [C, T, S] i32      feature pixel indices; go left (2i+1) when
    split_idx2    [C, T, S] i32        pixel[idx1] - pixel[idx2] > thresh,
    split_thresh  [C, T, S] f32        else right (2i+2)
    leaf_values   [C, T, 2^depth, L, 2] f32   shape increments in unit-box coordinates
"""

import sys

import numpy as np

import dlib_format
from dlib_format import FormatError


class Reader(dlib_format.Reader):
    """dlib's portable serialization (serialize.h), with the shape predictor's containers."""

    def column(self, what):
        # matrix<float,0,1>: rows, cols (negated in the newer format), then values.
        nr = abs(self.integer(what + " rows"))
        nc = abs(self.integer(what + " cols"))
        if nc != 1 or nr > 1 << 20:
            raise FormatError(f"{what}: expected a column vector, got {nr}x{nc}")
        return [self.real(what) for _ in range(nr)]

    def length(self, what):
        return self.unsigned(what + " length", 1 << 24)


def parse(data):
    r = Reader(data)
    version = r.integer("version")
    if version != 1:
        raise FormatError(f"unsupported shape_predictor version {version} (expected 1)")
    initial_shape = r.column("initial_shape")
    if not initial_shape or len(initial_shape) % 2:
        raise FormatError(f"initial_shape has {len(initial_shape)} values, expected an even, non-zero count")
    landmarks = len(initial_shape) // 2

    forests = []
    for c in range(r.length("forests")):
        trees = []
        for t in range(r.length(f"forest {c}")):
            where = f"cascade {c} tree {t}"
            splits = [(r.unsigned(where + " idx1"), r.unsigned(where + " idx2"), r.real(where + " thresh"))
                      for _ in range(r.length(where + " splits"))]
            leaves = [r.column(where + " leaf") for _ in range(r.length(where + " leaves"))]
            trees.append((splits, leaves))
        forests.append(trees)
    anchor_idx = [[r.unsigned(f"anchor_idx {c}") for _ in range(r.length(f"anchor_idx {c}"))]
                  for c in range(r.length("anchor_idx"))]
    deltas = [[(r.real(f"delta {c} x"), r.real(f"delta {c} y")) for _ in range(r.length(f"deltas {c}"))]
              for c in range(r.length("deltas"))]
    if r.pos != len(data):
        raise FormatError(f"{len(data) - r.pos} trailing bytes after the shape predictor")

    # The tensors are rectangular: every cascade has the same tree count and
    # pixel count, every tree is complete and of the same depth.
    cascades = len(forests)
    if cascades == 0 or len(anchor_idx) != cascades or len(deltas) != cascades:
        raise FormatError(f"{cascades} forests, {len(anchor_idx)} anchor lists, {len(deltas)} delta lists")
    trees_per_cascade = len(forests[0])
    splits_per_tree = len(forests[0][0][0]) if trees_per_cascade else 0
    leaves_per_tree = splits_per_tree + 1
    depth = leaves_per_tree.bit_length() - 1
    pixels = len(anchor_idx[0])
    if trees_per_cascade == 0 or leaves_per_tree != 1 << depth or depth == 0:
        raise FormatError(f"{trees_per_cascade} trees with {splits_per_tree} splits: not complete trees")
    for c in range(cascades):
        if len(forests[c]) != trees_per_cascade or len(anchor_idx[c]) != pixels or len(deltas[c]) != pixels:
            raise FormatError(f"cascade {c} differs in tree or feature pixel count from cascade 0")
        for t, (splits, leaves) in enumerate(forests[c]):
            if len(splits) != splits_per_tree or len(leaves) != leaves_per_tree:
                raise FormatError(f"cascade {c} tree {t}: {len(splits)} splits, {len(leaves)} leaves")
            if any(len(leaf) != 2 * landmarks for leaf in leaves):
                raise FormatError(f"cascade {c} tree {t}: a leaf is not {2 * landmarks} values")
            if any(i1 >= pixels or i2 >= pixels for i1, i2, _ in splits):
                raise FormatError(f"cascade {c} tree {t}: a split names a pixel >= {pixels}")
        if any(a >= landmarks for a in anchor_idx[c]):
            raise FormatError(f"cascade {c}: an anchor names a landmark >= {landmarks}")

    split = np.array([[s for s, _ in trees] for trees in forests], dtype=np.float64)  # [C,T,S,3]
    tensors = {
        "initial_shape": np.array(initial_shape, np.float32).reshape(landmarks, 2),
        "anchor_idx": np.array(anchor_idx, np.int32),
        "deltas": np.array(deltas, np.float32),
        "split_idx1": split[..., 0].astype(np.int32),
        "split_idx2": split[..., 1].astype(np.int32),
        "split_thresh": split[..., 2].astype(np.float32),
        "leaf_values": np.array([[leaves for _, leaves in trees] for trees in forests],
                                np.float32).reshape(cascades, trees_per_cascade, leaves_per_tree, landmarks, 2),
    }
    for name, t in tensors.items():
        if t.dtype == np.float32 and not np.all(np.isfinite(t)):
            raise FormatError(f"{name} contains NaN or infinity")
    counts = dict(cascades=cascades, trees_per_cascade=trees_per_cascade, tree_depth=depth,
                  landmarks=landmarks, feature_pixels=pixels)
    return tensors, counts


def describe(parsed):
    tensors, counts = parsed
    metadata = {
        "format": "dlib-shape-predictor-v1",
        "source": "shape_predictor_5_face_landmarks.dat (Davis King, CC0)",
        **{k: str(v) for k, v in counts.items()},
    }
    return tensors, metadata


def main(argv):
    return dlib_format.convert(argv, "dlib shape predictor", parse, describe)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
