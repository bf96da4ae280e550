#!/usr/bin/env python3
"""Convert dlib's face recognition ResNet to safetensors.

Usage:
    python3 scripts/dlib_face_resnet_to_safetensors.py MODEL.dat OUT.safetensors

MODEL.dat is dlib_face_recognition_resnet_model_v1.dat (Davis King, CC0), the
network that dlib's dnn_face_recognition_ex.cpp calls "anet_type".  The file is
parsed with numpy only (dlib is not imported); the parser was written from
reading dlib's serialization code, none of it is copied.

Output tensors (float32, PyTorch layouts, every affine/BN folded into its conv):
    stem.weight [32,3,7,7], stem.bias [32]
    blocks.{i}.conv1.weight [N,Cin,3,3], blocks.{i}.conv1.bias [N]   (applied first;
                                                           stride 2 in down blocks)
    blocks.{i}.conv2.weight [N,N,3,3],   blocks.{i}.conv2.bias [N]
    fc.weight [128,256]                                   (no bias)
The forward pass these weights expect is described in BLOCKS/forward notes below
and in the __metadata__ (block strides, input normalisation).
"""

import math
import sys

import numpy as np

import dlib_format
from dlib_format import FormatError

# ---------------------------------------------------------------------------
# Network description.
#
# dlib builds networks as nested templates; the file is written by recursing
# from the outermost layer (the loss) inward.  Each add_layer writes its
# version, then its whole sub-network, then its own parameters, so the byte
# stream is: the loss, then one version number per wrapper (outermost first),
# then the input layer, then every layer's parameters innermost (= first
# applied) first.  tag/skip wrappers only contribute a version number.
# Because tag/skip and add_prev carry no identifying data, the structure has
# to be known up front; every hyper-parameter that *is* stored is checked.
# ---------------------------------------------------------------------------

# (N, stride) for each residual block in forward order: alevel4 .. alevel0.
BLOCKS = ([(32, 1)] * 3
          + [(64, 2)] + [(64, 1)] * 3
          + [(128, 2)] + [(128, 1)] * 2
          + [(256, 2)] + [(256, 1)] * 2
          + [(256, 2)])


def forward_layer_list():
    """Layers in forward (innermost-first) order.

    Entries are (kind, info); kind 'tag'/'skip' are wrappers without
    parameters, everything else is an add_layer whose details we parse.
    """
    seq = [("con", dict(n=32, k=7, s=2, role="stem")),
           ("affine", dict(role="stem")),
           ("relu", {}),
           ("max_pool", dict(k=3, s=2))]
    for i, (n, s) in enumerate(BLOCKS):
        seq += [("tag", {}),                                   # tag1 = block input
                ("con", dict(n=n, k=3, s=s, role=(i, "conv1"))),
                ("affine", dict(role=(i, "conv1"))),
                ("relu", {}),
                ("con", dict(n=n, k=3, s=1, role=(i, "conv2"))),
                ("affine", dict(role=(i, "conv2")))]
        if s == 2:
            # residual_down: add_prev2<avg_pool<2,2,2,2,skip1<tag2<block>>>>
            seq += [("tag", {}), ("skip", {}), ("avg_pool", dict(k=2, s=2))]
        seq += [("add_prev", {}), ("relu", {})]
    seq += [("avg_pool", dict(k=0, s=1)),                    # avg_pool_everything
            ("fc", dict(n=128))]
    return seq


# ---------------------------------------------------------------------------
# Readers (dlib/serialize.h, dlib/float_details.h, cuda/tensor.h); the
# integers and floats are dlib_format's.
# ---------------------------------------------------------------------------

class Reader(dlib_format.Reader):
    def boolean(self, what="bool"):
        # bools are the ASCII characters '0' / '1'.
        c = self.take(1, what)
        if c not in (b"0", b"1"):
            raise FormatError(f"bad bool byte {c!r} at byte {self.pos - 1} ({what})")
        return c == b"1"

    def string(self, what="string"):
        n = self.unsigned(what + " length")
        if n > 1 << 16:
            raise FormatError(f"implausible string length {n} ({what})")
        raw = self.take(n, what)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise FormatError(f"non-ASCII string {raw[:40]!r} ({what})")

    def tensor(self, what):
        # resizable_tensor: version 2, dims as 4 integers, then raw float32
        # little-endian IEEE values (this one *is* IEEE, for compactness).
        v = self.integer(what + " version")
        if v != 2:
            raise FormatError(f"unsupported tensor version {v} ({what})")
        dims = tuple(self.integer(what + " dim") for _ in range(4))
        if any(d < 0 for d in dims):
            raise FormatError(f"negative tensor dims {dims} ({what})")
        count = math.prod(dims)  # Python ints: no overflow on garbage dims
        raw = self.take(4 * count, what + " data")
        return np.frombuffer(raw, dtype="<f4").reshape(dims)

    def alias(self, what):
        # alias_tensor: only a shape (version 1 + 4 dims), a view into params.
        v = self.integer(what + " version")
        if v != 1:
            raise FormatError(f"unsupported alias_tensor version {v} ({what})")
        return tuple(self.integer(what + " dim") for _ in range(4))


def expect(cond, msg):
    if not cond:
        raise FormatError(msg)


# ---------------------------------------------------------------------------
# Layer "details" readers (dlib/dnn/layers.h, input.h, loss.h).
# ---------------------------------------------------------------------------

def read_con(r, info, where):
    name = r.string(where)
    expect(name in ("con_4", "con_5", "con_6"),
           f"{where}: expected a con_ layer, found {name!r}")
    params = r.tensor(where + " params").reshape(-1)
    num_filters = r.integer("num_filters")
    nr, nc = r.integer("nr"), r.integer("nc")
    sy, sx = r.integer("stride_y"), r.integer("stride_x")
    py, px = r.integer("padding_y"), r.integer("padding_x")
    fdims = r.alias(where + " filters")
    bdims = r.alias(where + " biases")
    for _ in range(4):  # learning-rate / weight-decay multipliers
        r.real("multiplier")
    use_bias = True
    if name in ("con_5", "con_6"):
        use_bias = r.boolean("use_bias")
    if name == "con_6":
        use_relu = r.boolean("use_relu")
        expect(not use_relu, f"{where}: fused relu in con_ is not supported")

    k, s = info["k"], info["s"]
    pad = 0 if s != 1 else k // 2   # dlib's default padding rule (layers.h)
    expect((num_filters, nr, nc, sy, sx, py, px) == (info["n"], k, k, s, s, pad, pad),
           f"{where}: got con<{num_filters},{nr},{nc},{sy},{sx}> padding ({py},{px}), "
           f"expected con<{info['n']},{k},{k},{s},{s}> padding ({pad},{pad})")
    expect(fdims[0] == num_filters and fdims[2:] == (nr, nc),
           f"{where}: filter shape {fdims} inconsistent")
    nw = math.prod(fdims)
    nb = math.prod(bdims) if use_bias else 0
    expect(params.size == nw + nb,
           f"{where}: params has {params.size} values, filters+biases need {nw + nb}")
    expect(nb in (0, num_filters), f"{where}: bias shape {bdims} inconsistent")
    # params = filters (out, in, rows, cols; cross-correlation like PyTorch)
    # followed by the biases.
    w = params[:nw].reshape(fdims).astype(np.float64)
    b = params[nw:].astype(np.float64) if nb else np.zeros(num_filters)
    return w, b


def read_affine(r, where):
    name = r.string(where)
    if name in ("affine_", "affine_2"):
        params = r.tensor(where + " params").reshape(-1)
        g = r.alias(where + " gamma")
        bt = r.alias(where + " beta")
        mode = r.integer("mode")
        if name == "affine_2":
            expect(not r.boolean("disabled"), f"{where}: disabled affine_ layer")
        expect(mode == 0, f"{where}: affine_ not in CONV_MODE (mode={mode})")
        n = math.prod(g)
        expect(math.prod(bt) == n and params.size == 2 * n,
               f"{where}: affine params size {params.size} vs gamma {g}")
        # params = gamma (per channel) followed by beta.
        return params[:n].astype(np.float64), params[n:].astype(np.float64)
    if name == "bn_con2":
        # dlib accepts a batch-norm layer where an affine_ is expected and
        # converts it with the running statistics; do the same here.
        params = r.tensor(where + " params").reshape(-1)
        r.alias("gamma"); r.alias("beta")
        r.tensor("means"); r.tensor("invstds")
        rm = r.tensor("running_means").reshape(-1).astype(np.float64)
        rv = r.tensor("running_variances").reshape(-1).astype(np.float64)
        r.integer("num_updates"); r.integer("running_stats_window_size")
        for _ in range(4):
            r.real("multiplier")
        eps = r.real("eps")
        n = rm.size
        expect(params.size == 2 * n, f"{where}: bn params size mismatch")
        gamma = params[:n] / np.sqrt(rv + eps)
        return gamma, params[n:] - gamma * rm
    raise FormatError(f"{where}: expected an affine_ layer, found {name!r}")


def read_relu(r, where):
    name = r.string(where)
    expect(name in ("relu_", "relu_2"), f"{where}: expected relu_, found {name!r}")
    if name == "relu_2":
        expect(not r.boolean("disabled"), f"{where}: disabled relu_ layer")


def read_pool(r, kind, info, where):
    name = r.string(where)
    expect(name == kind + "_2", f"{where}: expected {kind}_2, found {name!r}")
    vals = tuple(r.integer(f) for f in ("nr", "nc", "stride_y", "stride_x",
                                        "padding_y", "padding_x"))
    k, s = info["k"], info["s"]
    pad = 0 if s != 1 else k // 2
    want = (k, k, s, s, pad, pad)
    expect(vals == want, f"{where}: {kind} params {vals}, expected {want}")


def read_fc(r, info, where):
    name = r.string(where)
    expect(name in ("fc_2", "fc_3"), f"{where}: expected fc_, found {name!r}")
    n_out = r.unsigned("num_outputs")
    n_in = r.unsigned("num_inputs")
    params = r.tensor(where + " params")
    wdims = r.alias("weights")
    r.alias("biases")
    bias_mode = r.integer("bias_mode")
    for _ in range(4):
        r.real("multiplier")
    if name == "fc_3":
        r.boolean("use_bias")
    expect(bias_mode == 1, f"{where}: expected fc_no_bias (bias_mode 1), got {bias_mode}")
    expect(n_out == info["n"], f"{where}: {n_out} outputs, expected {info['n']}")
    expect(params.size == n_in * n_out, f"{where}: params size {params.size} != {n_in}*{n_out}")
    # dlib computes output = input(rows=samples) x W with W stored [in, out];
    # PyTorch's Linear stores [out, in], hence the transpose.
    return params.reshape(n_in, n_out).T.astype(np.float64)


def read_input(r):
    name = r.string("input layer")
    expect(name == "input_rgb_image_sized",
           f"expected input_rgb_image_sized, found {name!r}")
    means = [r.real("avg_red"), r.real("avg_green"), r.real("avg_blue")]
    nr, nc = r.unsigned("nr"), r.unsigned("nc")
    expect((nr, nc) == (150, 150), f"input size {nr}x{nc}, expected 150x150")
    return means


def read_trailer(r, version, over_input, where):
    # Training state add_layer writes after the layer: three bools and a few
    # (normally empty) tensors.  Read and discard.
    for f in ("this_layer_setup_called", "gradient_input_is_stale",
              "get_output_and_gradient_input_disabled"):
        r.boolean(where + " " + f)
    r.tensor(where + " x_grad")
    r.tensor(where + " cached_output")
    if over_input:
        r.tensor(where + " grad_final")
        if version >= 3:
            r.integer(where + " sample_expansion_factor")
    elif version >= 2:
        r.tensor(where + " params_grad")


# ---------------------------------------------------------------------------

def parse(data):
    r = Reader(data)
    v = r.integer("add_loss_layer version")
    expect(v == 1, f"add_loss_layer version {v}, expected 1 (not a dlib dnn file?)")
    loss = r.string("loss layer")
    expect(loss in ("loss_metric_", "loss_metric_2"),
           f"expected loss_metric_ (face ResNet), found {loss!r}")
    if loss == "loss_metric_2":
        r.real("margin"); r.real("dist_thresh")

    layers = forward_layer_list()
    # Version numbers, outermost wrapper first.
    versions = [None] * len(layers)
    for idx in reversed(range(len(layers))):
        kind = layers[idx][0]
        v = r.integer(f"version of layer {idx} ({kind})")
        if kind in ("tag", "skip"):
            ok = v == 1
        elif idx == 0:
            ok = v in (2, 3)       # add_layer directly over the input layer
        else:
            ok = v in (1, 2)
        expect(ok, f"layer {idx} ({kind}): unexpected wrapper version {v}")
        versions[idx] = v

    means = read_input(r)

    out = {}
    pending = {}
    for idx, (kind, info) in enumerate(layers):
        where = f"layer {idx} ({kind})"
        if kind in ("tag", "skip"):
            continue
        if kind == "con":
            pending[info["role"]] = read_con(r, info, where)
        elif kind == "affine":
            w, b = pending.pop(info["role"])
            gamma, beta = read_affine(r, where)
            expect(gamma.size == w.shape[0], f"{where}: {gamma.size} channels, conv has {w.shape[0]}")
            # Fold: gamma*(conv(x,w)+b)+beta == conv(x, w*gamma) + (b*gamma+beta)
            wf = w * gamma[:, None, None, None]
            bf = b * gamma + beta
            role = info["role"]
            key = "stem" if role == "stem" else f"blocks.{role[0]}.{role[1]}"
            out[key + ".weight"] = wf.astype(np.float32)
            out[key + ".bias"] = bf.astype(np.float32)
        elif kind == "relu":
            read_relu(r, where)
        elif kind in ("max_pool", "avg_pool"):
            read_pool(r, kind, info, where)
        elif kind == "add_prev":
            name = r.string(where)
            expect(name == "add_prev_", f"{where}: expected add_prev_, found {name!r}")
        elif kind == "fc":
            out["fc.weight"] = read_fc(r, info, where).astype(np.float32)
        read_trailer(r, versions[idx], idx == 0, where)

    expect(r.pos == len(data),
           f"{len(data) - r.pos} unexpected trailing bytes after the network")

    # Cross-check channel chaining of the blocks.
    cin = 32
    for i, (n, _) in enumerate(BLOCKS):
        w1 = out[f"blocks.{i}.conv1.weight"]
        w2 = out[f"blocks.{i}.conv2.weight"]
        expect(w1.shape == (n, cin, 3, 3) and w2.shape == (n, n, 3, 3),
               f"block {i}: shapes {w1.shape} {w2.shape}, expected Cin={cin} N={n}")
        cin = n
    expect(out["fc.weight"].shape == (128, cin),
           f"fc weight shape {out['fc.weight'].shape}, expected (128, {cin})")
    return out, means


def describe(parsed):
    tensors, means = parsed
    meta = {
        "format": "dlib-face-resnet-v1",
        "source": "dlib_face_recognition_resnet_model_v1.dat (Davis King, CC0)",
        # Not recoverable from the weight shapes (block 13 is 256->256, stride 2).
        "block_strides": ",".join(str(s) for _, s in BLOCKS),
        # Input: RGB 150x150, x = (pixel - mean_rgb) / 256, planar (C,H,W).
        "input_mean_rgb": ",".join(repr(float(np.float32(m))) for m in means),
        "input_scale": "0.00390625",
    }
    return tensors, meta


def main(argv):
    return dlib_format.convert(argv, "dlib face ResNet model", parse, describe)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
