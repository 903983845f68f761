#!/usr/bin/python3
"""Writes the reference fixtures of tests/test_reference.cpp with PyTorch.

    /usr/bin/python3 tests/reference/generate_fixtures.py

Outputs, beside this script:
  narrow_vgg19.h5       a narrow VGG-19 (same topology, 4..8 channels) in the
                        nst-vgg19 format v1 (DESIGN.md, "Weights file")
  objective_fixture.h5  images, objective settings and the float64 reference:
                        activations, content targets, Gram matrices, every loss
                        term, the gradient w.r.t. the image, and the loss
                        trajectory of fixed-step torch.optim.LBFGS

Inputs (weights, images) are float32, the values the engine sees. The reference
is computed in float64 from those same float32 values, so it is the exact
answer to the engine's float32 problem up to ~1e-16, and the comparison
measures the engine's own rounding, not the oracle's.

Deterministic: all random values come from numpy's PCG64 with fixed seeds and
torch runs single-threaded. The objective's formulas follow DESIGN.md, "The
objective", term by term.
"""

import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as tf

FIXTURE_FORMAT = "nst-reference"
FIXTURE_VERSION = 1
HERE = os.path.dirname(os.path.abspath(__file__))
GENERATOR = "tests/reference/generate_fixtures.py (torch %s)" % torch.__version__

LAYERS = ["conv1_1", "conv1_2",
          "conv2_1", "conv2_2",
          "conv3_1", "conv3_2", "conv3_3", "conv3_4",
          "conv4_1", "conv4_2", "conv4_3", "conv4_4",
          "conv5_1", "conv5_2", "conv5_3", "conv5_4"]
POOL_AFTER = {"conv1_2", "conv2_2", "conv3_4", "conv4_4", "conv5_4"}
# Narrow widths: the topology of VGG-19 at a size a unit test runs in milliseconds.
WIDTHS = [4, 4, 6, 6, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8]

# Preprocessing of the narrow network. BGR exercises the channel permutation;
# a non-unit std exercises the division (Caffe's mean with torchvision-like std
# in 0..255 units).
COLOR_ORDER = "BGR"
PIXEL_SCALE = np.float32(255.0)
MEAN = np.array([103.939, 116.779, 123.68], dtype=np.float32)
STD = np.array([57.4, 57.1, 58.4], dtype=np.float32)

# Image sizes: odd and even sides so every pooling floors somewhere; the style
# image has its own size (targets are computed at the style image's size).
CONTENT_H, CONTENT_W = 37, 45
STYLE_H, STYLE_W = 29, 33

CONTENT_LAYERS = [("conv4_2", 1.0)]
STYLE_LAYERS = [("conv1_1", 0.2), ("conv2_1", 0.2), ("conv3_1", 0.2), ("conv4_1", 0.2),
                ("conv5_1", 0.2)]
# (α, β, γ) per pooling mode, chosen so the three weighted terms are of the
# same size at the test image x (the generator prints them), so an error in any
# one of them shows in L. Max pooling passes larger activations than average
# pooling, hence its smaller β.
LOSS_WEIGHTS = {"average": (1.0, 200.0, 0.02), "max": (1.0, 5.0, 1.0)}

LBFGS_ITERATIONS = 20


# ----------------------------------------------------------------------------
# Network and objective (DESIGN.md, "The objective")

def preprocess(x, dtype):
    """p(x)_c = (pixel_scale · x_perm(c) − mean_c) / std_c; perm reverses for BGR."""
    perm = [2, 1, 0] if COLOR_ORDER == "BGR" else [0, 1, 2]
    mean = torch.tensor(MEAN, dtype=dtype).view(3, 1, 1)
    std = torch.tensor(STD, dtype=dtype).view(3, 1, 1)
    return (float(PIXEL_SCALE) * x[perm] - mean) / std


def forward(x, weights, pool, deepest, dtype):
    """Post-ReLU activations {layer: (C, h, w)} of conv1_1..deepest for x (3, H, W)."""
    h = preprocess(x, dtype).unsqueeze(0)
    acts = {}
    for name in LAYERS:
        w, b = weights[name]
        h = torch.relu(tf.conv2d(h, torch.tensor(w, dtype=dtype), torch.tensor(b, dtype=dtype),
                                 padding=1))
        acts[name] = h[0]
        if name == deepest:
            break
        if name in POOL_AFTER:
            # 2×2, stride 2, floor (ceil_mode=False): a trailing odd row/column is dropped.
            h = tf.avg_pool2d(h, 2, 2) if pool == "average" else tf.max_pool2d(h, 2, 2)
    return acts


def gram(f):
    n = f.shape[0]
    flat = f.reshape(n, -1)  # (N, M)
    return flat @ flat.t()


def deepest_layer():
    used = [name for name, _ in CONTENT_LAYERS + STYLE_LAYERS]
    return max(used, key=LAYERS.index)


class Objective:
    """L = α L_c + β L_s + γ L_tv for one content image, one style image."""

    def __init__(self, weights, pool, content, style, dtype):
        self.weights, self.pool, self.dtype = weights, pool, dtype
        self.alpha, self.beta, self.gamma = LOSS_WEIGHTS[pool]
        self.deepest = deepest_layer()
        with torch.no_grad():
            c = forward(torch.tensor(content, dtype=dtype), weights, pool, self.deepest, dtype)
            s = forward(torch.tensor(style, dtype=dtype), weights, pool, self.deepest, dtype)
        self.content_targets = {l: c[l].clone() for l, _ in CONTENT_LAYERS}   # P^l
        self.style_targets = {l: gram(s[l]) for l, _ in STYLE_LAYERS}         # A^l

    def terms(self, x):
        acts = forward(x, self.weights, self.pool, self.deepest, self.dtype)
        content = sum(cw * 0.5 * ((acts[l] - self.content_targets[l]) ** 2).sum()
                      for l, cw in CONTENT_LAYERS)
        per_layer, grams = [], {}
        for l, _ in STYLE_LAYERS:
            f = acts[l]
            n, m = f.shape[0], f.shape[1] * f.shape[2]
            g = gram(f)
            grams[l] = g
            per_layer.append(((g - self.style_targets[l]) ** 2).sum() / (4.0 * n * n * m * m))
        style = sum(sw * e for (_, sw), e in zip(STYLE_LAYERS, per_layer))
        tv = ((x[:, :, 1:] - x[:, :, :-1]) ** 2).sum() + ((x[:, 1:, :] - x[:, :-1, :]) ** 2).sum()
        total = self.alpha * content + self.beta * style + self.gamma * tv
        return dict(total=total, content=content, style=style, tv=tv, per_layer=per_layer,
                    acts=acts, grams=grams)


def run_lbfgs(objective, x0, dtype):
    """Fixed-step torch.optim.LBFGS from x0; every closure evaluation's loss and the final x."""
    x = torch.tensor(x0, dtype=dtype).requires_grad_(True)
    optimizer = torch.optim.LBFGS([x], lr=1, max_iter=LBFGS_ITERATIONS, history_size=100,
                                  line_search_fn=None, tolerance_grad=1e-7,
                                  tolerance_change=1e-9)
    losses = []

    def closure():
        optimizer.zero_grad()
        loss = objective.terms(x)["total"]
        loss.backward()
        losses.append(loss.item())
        return loss

    optimizer.step(closure)
    # One evaluation at x0, then one after each iteration but the last: torch
    # does not evaluate the final iterate.
    if len(losses) != LBFGS_ITERATIONS:
        sys.exit("L-BFGS stopped early after %d evaluations; the fixture needs %d"
                 % (len(losses), LBFGS_ITERATIONS))
    return np.array(losses), x.detach().numpy().astype(np.float64)


# ----------------------------------------------------------------------------
# Inputs

def smooth_field(rng, h, w, octaves):
    """A smooth random field in roughly [-1, 1]: a few random sinusoids."""
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    field = np.zeros((h, w))
    for _ in range(octaves):
        fy, fx = rng.uniform(-0.35, 0.35, size=2)
        phase = rng.uniform(0, 2 * np.pi)
        field += np.sin(fy * yy + fx * xx + phase)
    return field / octaves


def make_images(rng):
    # Content: smooth colour fields, a bright disc and a dark bar, light noise.
    content = np.stack([smooth_field(rng, CONTENT_H, CONTENT_W, 3) for _ in range(3)])
    content = 0.5 + 0.3 * content
    yy, xx = np.meshgrid(np.arange(CONTENT_H), np.arange(CONTENT_W), indexing="ij")
    disc = (yy - 15.0) ** 2 + (xx - 28.0) ** 2 < 8.0 ** 2
    content[:, disc] = content[:, disc] * 0.4 + np.array([0.55, 0.5, 0.1])[:, None]
    content[:, 26:30, 4:30] *= 0.3
    content += rng.normal(0, 0.02, content.shape)
    content = np.clip(content, 0, 1).astype(np.float32)

    # Style: coloured diagonal stripes over a checkerboard, noisier.
    yy, xx = np.meshgrid(np.arange(STYLE_H), np.arange(STYLE_W), indexing="ij")
    stripes = 0.5 + 0.5 * np.sin(0.9 * (xx + yy))
    checker = ((yy // 4 + xx // 4) % 2).astype(np.float64)
    style = np.stack([0.2 + 0.7 * stripes, 0.1 + 0.6 * checker, 0.8 - 0.5 * stripes * checker])
    style += rng.normal(0, 0.05, style.shape)
    style = np.clip(style, 0, 1).astype(np.float32)

    # The test image x: the content image with noise, so L_c > 0 and every term
    # has a non-trivial gradient.
    x = np.clip(content + rng.normal(0, 0.1, content.shape), 0, 1).astype(np.float32)
    return content, style, x


# ----------------------------------------------------------------------------
# Narrow VGG-19 weights

def make_weights(rng, content, style):
    """He-normal weights rescaled per layer so the content image's pre-activations
    have unit standard deviation through all 16 layers (no vanishing, no
    explosion); biases small, of both signs. A draw is kept only when every
    channel is active (ReLU passes some values, masks others) on both images, so
    no Gram row is identically zero and every ReLU mask is non-trivial."""
    weights = {}
    dtype = torch.float64
    feats = [preprocess(torch.tensor(img, dtype=dtype), dtype).unsqueeze(0)
             for img in (content, style)]
    c_in = 3
    for name, c_out in zip(LAYERS, WIDTHS):
        for attempt in range(1000):
            w = rng.normal(0.0, np.sqrt(2.0 / (9 * c_in)), size=(c_out, c_in, 3, 3))
            z = tf.conv2d(feats[0], torch.tensor(w), padding=1)
            w = w / z.std().item()
            b = rng.uniform(-0.3, 0.3, size=c_out)
            w, b = w.astype(np.float32), b.astype(np.float32)
            outs = [torch.relu(tf.conv2d(f, torch.tensor(w, dtype=dtype),
                                         torch.tensor(b, dtype=dtype), padding=1))
                    for f in feats]
            # Per channel: fraction of positions where the ReLU passes.
            active = [(o[0] > 0).double().mean(dim=(1, 2)) for o in outs]
            content_ok = bool(((active[0] > 0.05) & (active[0] < 0.95)).all())
            style_ok = bool((active[1] > 0).all())
            signs_ok = bool((b > 0).any() and (b < 0).any())
            if content_ok and style_ok and signs_ok:
                break
        else:
            sys.exit("no acceptable draw for " + name)
        weights[name] = (w, b)
        if name in POOL_AFTER and name != LAYERS[-1]:
            outs = [tf.avg_pool2d(o, 2, 2) for o in outs]
        feats = outs
        c_in = c_out
    return weights


def write_weights(path, weights):
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "nst-vgg19"
        f.attrs["format_version"] = np.int32(1)
        f.attrs["color_order"] = COLOR_ORDER
        f.attrs["pixel_scale"] = np.float32(PIXEL_SCALE)
        f.attrs["mean"] = MEAN
        f.attrs["std"] = STD
        f.attrs["source"] = ("narrow random VGG-19 for tests (He-normal, rescaled per layer), "
                             "written by " + GENERATOR)
        for name in LAYERS:
            w, b = weights[name]
            g = f.create_group(name)
            g.create_dataset("weight", data=w, compression="gzip", compression_opts=9)
            g.create_dataset("bias", data=b, compression="gzip", compression_opts=9)


# ----------------------------------------------------------------------------
# Fixture file

def put(group, name, array, dtype):
    group.create_dataset(name, data=np.asarray(array, dtype=dtype), compression="gzip",
                         compression_opts=9, shuffle=True)


def t64(t):
    return t.detach().numpy().astype(np.float64)


def float32_deviation(weights, pool, content, style, x, ref, ref_losses, ref_final):
    """The same computation in float32 torch: how far an honest float32
    implementation lands from the float64 reference (guides the tolerances)."""
    obj32 = Objective(weights, pool, content, style, torch.float32)
    x32 = torch.tensor(x).requires_grad_(True)
    t = obj32.terms(x32)
    t["total"].backward()
    dev = {}
    def max_and_l2(a, r):
        a, r = a.detach().double(), r.detach()
        return ((a - r).abs().max() / r.abs().max()).item(), ((a - r).norm() / r.norm()).item()

    acts = [max_and_l2(t["acts"][l], ref["acts"][l]) for l in ref["acts"]]
    dev["activations max/maxref"] = max(m for m, _ in acts)
    dev["activations rel L2"] = max(e for _, e in acts)
    grams = [max_and_l2(t["grams"][l], ref["grams"][l]) for l in ref["grams"]]
    grams += [max_and_l2(obj32.style_targets[l], ref["style_targets"][l]) for l in ref["grams"]]
    dev["Grams max/maxref"] = max(m for m, _ in grams)
    dev["Grams rel L2"] = max(e for _, e in grams)
    for key in ("total", "content", "style", "tv"):
        dev[key] = abs(t[key].item() - ref[key].item()) / abs(ref[key].item())
    dev["max E_l"] = max(abs(a.item() - r.item()) / abs(r.item())
                         for a, r in zip(t["per_layer"], ref["per_layer"]))
    g32, g = x32.grad.double(), ref["gradient"]
    dev["gradient rel L2"] = ((g32 - g).norm() / g.norm()).item()
    dev["gradient max/maxref"] = ((g32 - g).abs().max() / g.abs().max()).item()
    losses32, final32 = run_lbfgs(obj32, content, torch.float32)
    dev["lbfgs final image rel L2"] = np.linalg.norm(final32 - ref_final) / np.linalg.norm(ref_final)
    dev["lbfgs final image max abs"] = np.abs(final32 - ref_final).max()
    dev["lbfgs per-step max rel"] = float(np.max(np.abs(losses32 - ref_losses) / np.abs(ref_losses)))
    dev["lbfgs per-step rel"] = list(np.abs(losses32 - ref_losses) / np.abs(ref_losses))
    return dev


def write_objective_group(f, pool, weights, content, style, x):
    dtype = torch.float64
    obj = Objective(weights, pool, content, style, dtype)
    xt = torch.tensor(x, dtype=dtype).requires_grad_(True)
    ref = obj.terms(xt)
    ref["total"].backward()
    ref["gradient"] = xt.grad.detach().clone()
    ref["style_targets"] = obj.style_targets

    losses, final_image = run_lbfgs(obj, content, dtype)

    g = f.create_group("max" if pool == "max" else "average")
    g.attrs["pool"] = pool
    g.attrs["content_weight"] = obj.alpha
    g.attrs["style_weight"] = obj.beta
    g.attrs["tv_weight"] = obj.gamma
    g.attrs["content_layers"] = ",".join(l for l, _ in CONTENT_LAYERS)
    g.attrs["content_layer_weights"] = np.array([w for _, w in CONTENT_LAYERS])
    g.attrs["style_layers"] = ",".join(l for l, _ in STYLE_LAYERS)
    g.attrs["style_layer_weights"] = np.array([w for _, w in STYLE_LAYERS])

    acts = g.create_group("activations")  # F^l of x, post-ReLU (C, h, w)
    for l in sorted(ref["acts"], key=LAYERS.index):
        put(acts, l, t64(ref["acts"][l]), np.float64)
    ct = g.create_group("content_targets")  # P^l (C, h, w)
    for l, _ in CONTENT_LAYERS:
        put(ct, l, t64(obj.content_targets[l]), np.float64)
    st = g.create_group("style_targets")  # A^l (N, N), at the style image's size
    for l, _ in STYLE_LAYERS:
        put(st, l, t64(obj.style_targets[l]), np.float64)
    gr = g.create_group("grams")  # G^l of x (N, N)
    for l, _ in STYLE_LAYERS:
        put(gr, l, t64(ref["grams"][l]), np.float64)

    lo = g.create_group("loss")
    for key in ("total", "content", "style", "tv"):
        lo.attrs[key] = ref[key].item()
    lo.attrs["style_per_layer"] = np.array([e.item() for e in ref["per_layer"]])
    put(g, "gradient", t64(ref["gradient"]), np.float64)  # ∂L/∂x (3, H, W)

    lb = g.create_group("lbfgs")
    lb.attrs["init"] = "content"
    lb.attrs["lr"] = 1.0
    lb.attrs["history_size"] = np.int32(100)
    lb.attrs["max_iter"] = np.int32(LBFGS_ITERATIONS)
    lb.attrs["line_search"] = "none"
    put(lb, "losses", losses, np.float64)            # closure evaluations 0..19 at x_0..x_19
    put(lb, "final_image", final_image, np.float64)  # x_20 (3, H, W), not evaluated by torch

    weighted = (obj.alpha * ref["content"].item(), obj.beta * ref["style"].item(),
                obj.gamma * ref["tv"].item())
    print("[%s] L = %.6g: α·L_c = %.4g, β·L_s = %.4g, γ·L_tv = %.4g"
          % (pool, ref["total"].item(), *weighted))
    print("[%s] E_l = %s" % (pool, ", ".join("%.4g" % e.item() for e in ref["per_layer"])))
    print("[%s] activation max per layer: %s" % (pool, ", ".join(
        "%s %.3g" % (l, ref["acts"][l].abs().max().item()) for l in sorted(ref["acts"], key=LAYERS.index))))
    print("[%s] L-BFGS losses: %s" % (pool, " ".join("%.6g" % v for v in losses)))
    dev = float32_deviation(weights, pool, content, style, x, ref, losses, final_image)
    for k, v in dev.items():
        if isinstance(v, list):
            print("[%s] float32 torch vs float64, %s: %s" % (pool, k, " ".join("%.1e" % e for e in v)))
        else:
            print("[%s] float32 torch vs float64, %s: %.2e" % (pool, k, v))


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)  # nothing draws from torch's generator; set for safety
    rng = np.random.default_rng(20160627)
    content, style, x = make_images(rng)
    weights = make_weights(rng, content, style)

    weights_path = os.path.join(HERE, "narrow_vgg19.h5")
    write_weights(weights_path, weights)

    fixture_path = os.path.join(HERE, "objective_fixture.h5")
    with h5py.File(fixture_path, "w") as f:
        f.attrs["fixture_format"] = FIXTURE_FORMAT
        f.attrs["fixture_version"] = np.int32(FIXTURE_VERSION)
        f.attrs["generator"] = GENERATOR
        f.attrs["weights_file"] = "narrow_vgg19.h5"
        put(f, "content", content, np.float32)  # (3, 37, 45) RGB in [0,1]
        put(f, "style", style, np.float32)      # (3, 29, 33)
        put(f, "x", x, np.float32)              # (3, 37, 45) content + noise
        for pool in ("average", "max"):
            write_objective_group(f, pool, weights, content, style, x)

    # The weights file carries the fixture header too, so a stale pair is caught.
    with h5py.File(weights_path, "a") as f:
        f.attrs["fixture_format"] = FIXTURE_FORMAT
        f.attrs["fixture_version"] = np.int32(FIXTURE_VERSION)
        f.attrs["generator"] = GENERATOR
    for path in (weights_path, fixture_path):
        print("wrote %s (%d bytes)" % (os.path.relpath(path), os.path.getsize(path)))


if __name__ == "__main__":
    main()
