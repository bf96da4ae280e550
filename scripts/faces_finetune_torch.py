"""Does fine-tuning SqueezeNet with a classification loss help one-shot recognition of people
it never saw? A validation on ORL s1-s30 only (s31-s40 are never opened), in PyTorch, for a
borrowed GPU: the lavapipe machine cannot afford to explore fine-tuning (docs/faces.md).

It mirrors `train_siamese`'s network: SqueezeNet v1.1 (the embedded Caffe weights, BGR 0..255
minus the mean) on the greyscale photo resized to 184x224, fire5 average-pooled to 4x3 and
fire7 to 1x1, each L2-normalised, concatenated, summed with the mirror image's; the learned
whitening of `src/faces/whitening.rs` (shrinkage 0.25) on the training people's photos and
four augmented copies. A design is scored on random splits of s1-s30 into training and
validation people (10-way one-shot with 20 training people, 20-way with 10) and on the
validation photos half of which are zoomed in by 15-35 % (`closer`).

Designs: `frozen` (the trunk as shipped), and `ftN`: the trunk from layer N of
`torchvision.models.squeezenet1_1().features` on (6 = fire4, 9 = fire6, 0 = everything)
trained first, with a CosFace loss (scale 30, margin 0.2) over the split's training people
(or with `loss=triplet`, the batch-hard triplet loss, margin 0.2) on a linear projection of
the descriptor, with online augmentation; the projection is then dropped and the whitening
computed as for `frozen`.

    python3 scripts/faces_finetune_torch.py ORL_DIR assets/squeezenet1_1.safetensors \
        [designs=frozen,ft6,ft9,ft0] [protocols=10,20] [splits=4] [epochs=15] [lr=1e-4] \
        [loss=cosface|triplet]
"""
import copy
import math
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from safetensors.torch import load_file

HEIGHT, WIDTH = 224, 184
MEAN_BGR = (104.006, 116.669, 122.679)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def load_orl(root):
    images, labels = [], []
    for person in range(1, 31):
        for k in range(1, 11):
            image = Image.open(f"{root}/s{person}/{k}.pgm").convert("L")
            images.append(np.asarray(image, dtype=np.float32) / 255.0)
            labels.append(person - 1)
    x = torch.tensor(np.stack(images))[:, None].to(DEVICE)
    return x, torch.tensor(labels, device=DEVICE)


def preprocess(x):
    """[0, 1] greyscale N x 1 x h x w -> the trunk's input N x 3 x 224 x 184."""
    x = F.interpolate(x, size=(HEIGHT, WIDTH), mode="bilinear", align_corners=False)
    mean = torch.tensor(MEAN_BGR, device=x.device).view(1, 3, 1, 1)
    return x.repeat(1, 3, 1, 1) * 255.0 - mean


def augment(x, generator, closer_only=False):
    """Copies as from another distance, position and light (close to `train`'s augmentation)."""
    n = x.shape[0]

    def uniform(lo, hi):
        return (torch.rand(n, generator=generator) * (hi - lo) + lo).to(x.device)

    if closer_only:
        zoom = torch.where(uniform(0, 1) < 0.5, uniform(1.15, 1.35), torch.ones(n, device=x.device))
        shift_x = shift_y = torch.zeros(n, device=x.device)
    else:
        zoom = torch.exp(uniform(math.log(1 / 1.2), math.log(1.35)))
        shift_x, shift_y = uniform(-0.12, 0.12), uniform(-0.12, 0.12)
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0] = 1 / zoom
    theta[:, 1, 1] = 1 / zoom
    theta[:, 0, 2] = shift_x
    theta[:, 1, 2] = shift_y
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    y = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if closer_only:
        return y
    gamma = torch.exp(uniform(math.log(0.67), math.log(1.5))).view(n, 1, 1, 1)
    gain = uniform(0.7, 1.3).view(n, 1, 1, 1)
    offset = uniform(-0.1, 0.1).view(n, 1, 1, 1)
    return (y.clamp(1e-6, 1) ** gamma * gain + offset).clamp(0, 1)


def trunk(weights):
    model = torchvision.models.squeezenet1_1(weights=None)
    model.load_state_dict(load_file(weights))
    return model.features[:11].to(DEVICE)


def grid_pool(f, rows, cols):
    h, w = f.shape[2:]
    sh, sw = h // rows, w // cols
    kernel = (h - (rows - 1) * sh, w - (cols - 1) * sw)
    return F.avg_pool2d(f, kernel_size=kernel, stride=(sh, sw)).flatten(1)


def descriptor(features, x):
    y = x
    for i, layer in enumerate(features):
        y = layer(y)
        if i == 7:
            fire5 = y
    return torch.cat(
        [F.normalize(grid_pool(fire5, 4, 3), dim=1), F.normalize(y.mean((2, 3)), dim=1)], 1
    )


@torch.no_grad()
def mirror_descriptors(features, x):
    out = []
    for chunk in x.split(100):
        p = preprocess(chunk)
        out.append(descriptor(features, p) + descriptor(features, p.flip(3)))
    return torch.cat(out).double()


def whitening(x, labels, dim, shrinkage=0.25):
    """`src/faces/whitening.rs`: PCA to at most `dim` directions, then the within-person
    scatter whitened (shrunk by `shrinkage` times its mean eigenvalue)."""
    n = x.shape[0]
    mean = x.mean(0)
    c = x - mean
    values, vectors = torch.linalg.eigh(c @ c.T)
    values, vectors = values.flip(0), vectors.flip(1)
    k = int(min(dim, n - 1, int((values > values[0] * 1e-10).sum())))
    directions = (vectors[:, :k] / values[:k].sqrt()).T @ c
    projected = c @ directions.T
    residual = projected.clone()
    for label in labels.unique():
        mask = labels == label
        residual[mask] -= projected[mask].mean(0)
    scatter = residual.T @ residual / n
    scatter += torch.eye(k, device=x.device, dtype=x.dtype) * shrinkage * scatter.trace() / k
    within, basis = torch.linalg.eigh(scatter)
    return (basis / within.sqrt()).T @ directions, mean


def scores(embeddings, labels):
    """One-shot accuracy (gallery: the r-th photo of each person, averaged over r), EER over
    all pairs, and each person's wrong decisions as probe."""
    d = torch.cdist(embeddings, embeddings) ** 2
    people = labels.unique()
    members = [torch.nonzero(labels == p).flatten() for p in people]
    rounds = min(len(m) for m in members)
    accuracy, wrong = [], {int(p): 0 for p in people}
    for r in range(rounds):
        gallery = torch.stack([m[r] for m in members])
        mask = torch.ones(len(labels), dtype=torch.bool, device=labels.device)
        mask[gallery] = False
        probes = torch.nonzero(mask).flatten()
        named = people[d[probes][:, gallery].argmin(1)]
        right = named == labels[probes]
        accuracy.append(right.double().mean().item())
        for p in labels[probes][~right].tolist():
            wrong[p] += 1
    i, j = torch.triu_indices(len(labels), len(labels), 1, device=labels.device)
    distance, same = d[i, j], labels[i] == labels[j]
    order = torch.argsort(distance)
    same = same[order]
    accepted_same = torch.cumsum(same.double(), 0) / same.sum()
    accepted_other = torch.cumsum((~same).double(), 0) / (~same).sum()
    gap = (1 - accepted_same) - accepted_other
    at = int(torch.argmin(gap.abs()))
    eer = ((1 - accepted_same[at]) + accepted_other[at]).item() / 2
    return sum(accuracy) / len(accuracy), eer, wrong


def batch_hard(z, target, margin):
    """The triplet loss with each anchor's hardest positive and negative in the batch."""
    d = torch.cdist(z, z) ** 2
    same = target[:, None] == target[None, :]
    positive = torch.where(same, d, torch.zeros_like(d)).max(1).values
    negative = torch.where(same, torch.full_like(d, 1e9), d).min(1).values
    return F.relu(positive - negative + margin).mean()


def finetune(features, x, labels, first_layer, epochs, lr, generator, loss_kind):
    features = copy.deepcopy(features)
    for i, layer in enumerate(features):
        for p in layer.parameters():
            p.requires_grad_(i >= first_layer)
    classes = labels.unique()
    target = torch.searchsorted(classes, labels)
    projection = torch.nn.Linear(256 * 12 + 384, 512).to(DEVICE)
    centres = torch.nn.Parameter(torch.randn(len(classes), 512, device=DEVICE) * 0.01)
    trained = [p for p in features.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(
        [{"params": trained, "lr": lr}, {"params": list(projection.parameters()) + [centres], "lr": 1e-3}]
    )
    n = len(labels)
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).to(DEVICE)
        for batch in order.split(32):
            images = augment(x[batch], generator)
            flip = (torch.rand(len(batch), generator=generator) < 0.5).to(DEVICE)
            images = torch.where(flip.view(-1, 1, 1, 1), images.flip(3), images)
            z = F.normalize(projection(descriptor(features, preprocess(images))), dim=1)
            if loss_kind == "triplet":
                loss = batch_hard(z, target[batch], 0.2)
            else:
                cosine = z @ F.normalize(centres, dim=1).T
                margin = F.one_hot(target[batch], len(classes)) * 0.2
                loss = F.cross_entropy(30.0 * (cosine - margin), target[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return features, loss.item()


def main():
    root, weights = sys.argv[1], sys.argv[2]
    options = dict(a.split("=", 1) for a in sys.argv[3:])
    designs = options.get("designs", "frozen,ft6,ft9,ft0").split(",")
    protocols = [int(p) for p in options.get("protocols", "10,20").split(",")]
    splits = int(options.get("splits", "4"))
    epochs = int(options.get("epochs", "15"))
    lr = float(options.get("lr", "1e-4"))
    loss_kind = options.get("loss", "cosface")
    print(f"device {DEVICE} ({torch.cuda.get_device_name() if DEVICE == 'cuda' else 'cpu'}), "
          f"designs {designs}, protocols {protocols}, {splits} splits, {epochs} epochs, lr {lr}, "
          f"loss {loss_kind}",
          flush=True)
    x, labels = load_orl(root)
    base = trunk(weights)
    g = torch.Generator().manual_seed(7)
    copies = [augment(x, g) for _ in range(4)]
    closer = augment(x, g, closer_only=True)
    totals = {}
    for n_train in protocols:
        for split in range(splits):
            order = torch.randperm(30, generator=torch.Generator().manual_seed(1000 + split))
            train_people = order[:n_train].to(DEVICE)
            is_train = torch.isin(labels, train_people)
            for design in designs:
                start = time.time()
                features, loss = base, float("nan")
                if design != "frozen":
                    torch.manual_seed(split)
                    features, loss = finetune(
                        base, x[is_train], labels[is_train], int(design[2:]), epochs, lr,
                        torch.Generator().manual_seed(split), loss_kind,
                    )
                train_x = torch.cat([mirror_descriptors(features, v[is_train]) for v in [x] + copies])
                train_y = labels[is_train].repeat(1 + len(copies))
                matrix, mean = whitening(train_x, train_y, 1024)
                row = []
                for probes in (x, closer):
                    e = F.normalize((mirror_descriptors(features, probes[~is_train]) - mean) @ matrix.T, dim=1)
                    one_shot, eer, wrong = scores(e, labels[~is_train])
                    row.append((one_shot, eer))
                hard = sorted(wrong.items(), key=lambda kv: -kv[1])[:4]
                key = (n_train, design)
                totals.setdefault(key, []).append(row)
                print(f"train={n_train} split={split} {design:7s} one-shot {row[0][0]:.4f} eer {row[0][1]:.4f} "
                      f"| closer {row[1][0]:.4f} eer {row[1][1]:.4f} | loss {loss:.3f} "
                      f"| most wrong (person s#: count) {[(f's{p + 1}', c) for p, c in hard]} "
                      f"| {time.time() - start:.1f} s", flush=True)
    print("means over splits: one-shot, EER | closer one-shot, EER")
    for (n_train, design), rows in totals.items():
        m = np.array(rows).mean(0)
        print(f"train={n_train} {design:7s} {m[0][0]:.4f} {m[0][1]:.4f} | {m[1][0]:.4f} {m[1][1]:.4f} ({len(rows)} splits)")


if __name__ == "__main__":
    main()
