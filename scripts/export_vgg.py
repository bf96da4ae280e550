"""Exports torchvision's pretrained VGG16 or VGG19 feature layers as a safetensors file for
`stylize --model vgg16|vgg19 --weights FILE`.

    pip install torch torchvision safetensors
    python3 scripts/export_vgg.py vgg16 vgg16.safetensors
    python3 scripts/export_vgg.py vgg19 vgg19.safetensors

Only `features.*` (the convolutions) is written, as contiguous float32 tensors under
torchvision's state_dict names (`features.0.weight` [64, 3, 3, 3], `features.0.bias` [64],
...), with the input normalisation in the file's `__metadata__`. The classifier (about 120 M
parameters) is not needed for style transfer and is left out: vgg16 is 56 MiB, vgg19 77 MiB.
torchvision downloads the weights on first use (to ~/.cache/torch).
"""
import argparse
import sys

import torch
import torchvision
from safetensors.torch import save_file

WEIGHTS = {
    "vgg16": "VGG16_Weights.IMAGENET1K_V1",
    "vgg19": "VGG19_Weights.IMAGENET1K_V1",
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", choices=sorted(WEIGHTS))
    parser.add_argument("output", help="the .safetensors file to write")
    args = parser.parse_args()

    model = getattr(torchvision.models, args.model)(weights=WEIGHTS[args.model])
    tensors = {
        name: tensor.detach().to(torch.float32).contiguous()
        for name, tensor in model.state_dict().items()
        if name.startswith("features.")
    }
    metadata = {
        "model": args.model,
        "source": f"torchvision {torchvision.__version__} {WEIGHTS[args.model]}",
        "input": "RGB, 0..1, minus mean, divided by std",
        "mean_rgb": "0.485,0.456,0.406",
        "std_rgb": "0.229,0.224,0.225",
    }
    save_file(tensors, args.output, metadata=metadata)
    count = sum(t.numel() for t in tensors.values())
    print(f"wrote {args.output}: {len(tensors)} tensors, {count} parameters", file=sys.stderr)


if __name__ == "__main__":
    main()
