#!/usr/bin/python3
# torch.optim.LBFGS (lr 1, no line search: the semantics nst's fixed mode
# follows) on nst's objective (DESIGN.md) with the shared VGG-19 weights,
# Tübingen × Starry Night at 64 px, beta = 1e4, 20 iterations, from the content
# photo (default) or from noise. Prints every loss.
#
# Measured with Debian's torch 1.13: from the content photo the third
# evaluation is inf and every later one NaN; from uniform or Gaussian noise it
# does not diverge in 20 iterations. nst on the same problem: the test
# "cli: a heavy style weight from the content photo converges where torch diverges".
#
#   /usr/bin/python3 bench/torch_lbfgs_divergence.py [--init content|rand|randn]
# Run from the repository root; needs python3-pil besides python3-torch and python3-h5py.
import argparse

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

parser = argparse.ArgumentParser()
parser.add_argument("--init", default="content", choices=["content", "rand", "randn"])
parser.add_argument("--assets", default="../shared/assets")
args = parser.parse_args()
torch.manual_seed(0)

weights = h5py.File(f"{args.assets}/vgg19/vgg19-conv-hybrid.h5", "r")
names = ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv3_4",
         "conv4_1", "conv4_2", "conv4_3", "conv4_4", "conv5_1"]
pools = {"conv1_2", "conv2_2", "conv3_4", "conv4_4"}
layers = [(torch.tensor(weights[n]["weight"][:]), torch.tensor(weights[n]["bias"][:])) for n in names]
mean = torch.tensor(weights.attrs["mean"]).view(3, 1, 1)
scale = float(weights.attrs["pixel_scale"])  # the file is BGR: channels are flipped below


def load(path, size):
    image = Image.open(path).convert("RGB")
    s = size / max(image.size)
    image = image.resize((round(image.size[0] * s), round(image.size[1] * s)), Image.LANCZOS)
    return torch.tensor(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1).contiguous()


def features(x):
    h = (scale * x.flip(0) - mean).unsqueeze(0)
    out = {}
    for name, (w, b) in zip(names, layers):
        h = F.relu(F.conv2d(h, w, b, padding=1))
        out[name] = h[0]
        if name in pools:
            h = F.avg_pool2d(h, 2)
    return out


def gram(f):
    f = f.reshape(f.shape[0], -1)
    return f @ f.t()


content = load(f"{args.assets}/images/tubingen.jpg", 64)
style = load(f"{args.assets}/images/starry_night.jpg", 64)
P = features(content)["conv4_2"].detach()
style_features = features(style)
style_layers = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]
A = {l: gram(style_features[l]).detach() for l in style_layers}

start = {"content": content.clone(), "rand": torch.rand(content.shape), "randn": torch.randn(content.shape)}
x = start[args.init].contiguous().requires_grad_(True)
optimizer = torch.optim.LBFGS([x], lr=1, max_iter=20, history_size=100)
losses = []


def closure():
    optimizer.zero_grad()
    f = features(x)
    content_loss = 0.5 * ((f["conv4_2"] - P) ** 2).sum()
    style_loss = sum(((gram(f[l]) - A[l]) ** 2).sum()
                     / (4 * f[l].shape[0] ** 2 * (f[l].shape[1] * f[l].shape[2]) ** 2)
                     for l in style_layers) / len(style_layers)
    loss = content_loss + 1e4 * style_loss
    loss.backward()
    losses.append(loss.item())
    return loss


optimizer.step(closure)
print(f"torch {torch.__version__}, init {args.init}:", " ".join(f"{l:.3g}" for l in losses))
