#!/usr/bin/env python3
"""PyTorch baseline for nst-bench: the same objective, the same optimiser settings,
the same inputs, timed the same way, printed as JSON in the same shape.

Objective (DESIGN.md, "The objective"): preprocessing p(x) from the weights,
VGG-19 conv layers up to conv5_1 (3x3, padding 1, bias, ReLU), 2x2 average
pooling, L = a L_c + b L_s with L_c = 1/2 sum (F - P)^2 at conv4_2 and
L_s = sum_l 1/5 E_l, E_l = sum (G - A)^2 / (4 N^2 M^2) at conv1_1..conv5_1,
a = 1, b = 1e3. Gradients are taken w.r.t. the image only.

Measured, after warm-up, median / min / max over repeats:
  - one evaluation: forward + backward w.r.t. the image;
  - one torch.optim.LBFGS(lr=1, history_size=100, max_iter=1) step (one
    evaluation each, as nst's fixed-step L-BFGS): K steps timed together and
    divided by K, the first evaluation not counted.

Weights and images come from the same counter-based hash as apps/nst_bench.cpp
(splitmix64 of the element index), so with the same --weights (or none) both
programs evaluate the same function on the same image and report comparable
losses.

Usage: /usr/bin/python3 bench/torch_baseline.py --device cpu --size 256 --threads 2
"""

import argparse
import json
import math
import os
import platform
import resource
import statistics
import sys
import time

import numpy as np
import torch

LAYER_NAMES = [
    "conv1_1", "conv1_2", "conv2_1", "conv2_2",
    "conv3_1", "conv3_2", "conv3_3", "conv3_4",
    "conv4_1", "conv4_2", "conv4_3", "conv4_4",
    "conv5_1", "conv5_2", "conv5_3", "conv5_4",
]
POOL_AFTER = {"conv1_2", "conv2_2", "conv3_4", "conv4_4", "conv5_4"}
WIDTHS = [64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512]  # up to conv5_1
CONTENT_LAYERS = {"conv4_2": 1.0}
STYLE_LAYERS = {name: 0.2 for name in ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]}
CONTENT_WEIGHT = 1.0
STYLE_WEIGHT = 1e3
DEEPEST = LAYER_NAMES.index("conv5_1")
CONTENT_STREAM, STYLE_STREAM, START_STREAM = 1001, 1002, 1003

# ---- deterministic pseudo-random values (as apps/nst_bench.cpp) -------------------------
_M64 = np.uint64


def uniform01(stream, count):
    """u(stream, i) for i < count: splitmix64(i*phi64 + stream*c + 1) >> 40, over 2^24."""
    with np.errstate(over="ignore"):
        z = np.arange(count, dtype=np.uint64) * _M64(0x9E3779B97F4A7C15)
        z += _M64((stream * 0xBF58476D1CE4E5B9 + 1) % (1 << 64))
        z = (z ^ (z >> _M64(30))) * _M64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> _M64(27))) * _M64(0x94D049BB133111EB)
        z ^= z >> _M64(31)
    return (z >> _M64(40)).astype(np.float64) / float(1 << 24)


def random_image(size, stream):
    return uniform01(stream, 3 * size * size).astype(np.float32).reshape(3, size, size)


def generated_weights():
    """VGG-19 widths up to conv5_1, He-uniform weights, small biases, torchvision preprocessing."""
    layers = []
    in_channels = 3
    for index, width in enumerate(WIDTHS):
        bound = math.sqrt(6.0 / (9.0 * in_channels))
        weight = ((2.0 * uniform01(2 * index, width * in_channels * 9) - 1.0) * bound)
        bias = (2.0 * uniform01(2 * index + 1, width) - 1.0) * 0.01
        layers.append((weight.astype(np.float32).reshape(width, in_channels, 3, 3),
                       bias.astype(np.float32)))
        in_channels = width
    pre = {"bgr": False, "pixel_scale": 1.0,
           "mean": np.array([0.485, 0.456, 0.406], np.float32),
           "std": np.array([0.229, 0.224, 0.225], np.float32)}
    return layers, pre


def file_weights(path):
    """Reads an nst-vgg19 HDF5 file (format version 1) up to conv5_1."""
    import h5py

    with h5py.File(path, "r") as f:
        def text(value):
            return value.decode() if isinstance(value, bytes) else str(value)

        if text(f.attrs["format"]) != "nst-vgg19":
            sys.exit(f"{path}: not an nst-vgg19 file")
        pre = {"bgr": text(f.attrs["color_order"]) == "BGR",
               "pixel_scale": float(np.float32(f.attrs["pixel_scale"])),
               "mean": np.asarray(f.attrs["mean"], np.float32),
               "std": np.asarray(f.attrs["std"], np.float32)}
        layers = [(np.asarray(f[name]["weight"], np.float32), np.asarray(f[name]["bias"], np.float32))
                  for name in LAYER_NAMES[:DEEPEST + 1]]
    return layers, pre


# ---- the objective ---------------------------------------------------------------------
class Network(torch.nn.Module):
    """VGG-19 conv layers conv1_1..conv5_1 with average pooling; returns every activation."""

    def __init__(self, layers):
        super().__init__()
        self.convs = torch.nn.ModuleList()
        for weight, bias in layers:
            conv = torch.nn.Conv2d(weight.shape[1], weight.shape[0], 3, padding=1)
            with torch.no_grad():
                conv.weight.copy_(torch.from_numpy(weight))
                conv.bias.copy_(torch.from_numpy(bias))
            conv.requires_grad_(False)
            self.convs.append(conv)
        self.pool = torch.nn.AvgPool2d(2, 2)

    def forward(self, x):
        out = {}
        for index, conv in enumerate(self.convs):
            name = LAYER_NAMES[index]
            x = torch.relu(conv(x))
            out[name] = x
            if name in POOL_AFTER and index < DEEPEST:
                x = self.pool(x)
        return out


def gram(features):
    f = features.reshape(features.shape[1], -1)  # (N, M)
    return f @ f.t()


class Objective:
    def __init__(self, network, pre, device):
        self.network = network
        perm = [2, 1, 0] if pre["bgr"] else [0, 1, 2]
        self.perm = torch.tensor(perm, device=device)
        self.scale = pre["pixel_scale"]
        self.mean = torch.from_numpy(pre["mean"]).to(device).view(1, 3, 1, 1)
        self.std = torch.from_numpy(pre["std"]).to(device).view(1, 3, 1, 1)
        self.content_targets = {}
        self.style_targets = {}

    def preprocess(self, image):  # (3, H, W) -> (1, 3, H, W)
        return (self.scale * image[self.perm].unsqueeze(0) - self.mean) / self.std

    def set_targets(self, content, style):
        with torch.no_grad():
            acts = self.network(self.preprocess(content))
            self.content_targets = {name: acts[name].clone() for name in CONTENT_LAYERS}
            acts = self.network(self.preprocess(style))
            self.style_targets = {name: gram(acts[name]) for name in STYLE_LAYERS}

    def loss(self, image):
        acts = self.network(self.preprocess(image))
        content = sum(w * 0.5 * ((acts[n] - self.content_targets[n]) ** 2).sum()
                      for n, w in CONTENT_LAYERS.items())
        style = 0.0
        for name, w in STYLE_LAYERS.items():
            f = acts[name]
            n, m = f.shape[1], f.shape[2] * f.shape[3]
            style = style + w * ((gram(f) - self.style_targets[name]) ** 2).sum() / (4.0 * n * n * m * m)
        return CONTENT_WEIGHT * content + STYLE_WEIGHT * style, content, style


# ---- timing ------------------------------------------------------------------------------
def summary_ms(seconds):
    ms = [1e3 * s for s in seconds]
    return {"median": statistics.median(ms), "min": min(ms), "max": max(ms), "samples": ms}


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_size(args, layers, pre, device, size):
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    network = Network(layers).to(device)
    objective = Objective(network, pre, device)
    objective.set_targets(torch.from_numpy(random_image(size, CONTENT_STREAM)).to(device),
                          torch.from_numpy(random_image(size, STYLE_STREAM)).to(device))
    start = torch.from_numpy(random_image(size, START_STREAM)).to(device)
    x = start.clone().requires_grad_(True)

    def evaluate_once():
        t0 = time.perf_counter()
        x.grad = None
        loss, content, style = objective.loss(x)
        loss.backward()
        value = loss.item()  # a host value, as nst's evaluate() returns
        sync()
        return time.perf_counter() - t0, value, float(content), float(style)

    for _ in range(args.warmup):
        evaluate_once()
    evaluation_seconds = []
    for i in range(args.repeats):
        seconds, loss, content, style = evaluate_once()
        evaluation_seconds.append(seconds)
        print(f"torch_baseline: {size}x{size} evaluation {i + 1}/{args.repeats}: "
              f"{1e3 * seconds:.1f} ms", file=sys.stderr)
    gradient_l1 = float(x.grad.double().abs().sum())
    if args.profile:
        # Where torch spends one evaluation, for comparison with nst's breakdown.
        with torch.autograd.profiler.profile() as profile:
            evaluate_once()
        print(profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=20),
              file=sys.stderr)

    result = {"size": size, "width": size, "height": size,
              "evaluation_ms": summary_ms(evaluation_seconds),
              "loss": loss, "content_loss": content, "style_loss": style,
              "gradient_l1": gradient_l1}

    if args.iterations_lbfgs > 0:
        iteration_seconds = []
        final_loss = 0.0
        for r in range(args.lbfgs_repeats):
            with torch.no_grad():
                x.copy_(start)
            optimizer = torch.optim.LBFGS([x], lr=1, history_size=100, max_iter=1)

            def closure():
                optimizer.zero_grad()
                loss = objective.loss(x)[0]
                loss.backward()
                return loss

            # The first step holds the initial evaluation (nst's iteration 0):
            # the clock starts after it, and each following step() is one
            # evaluation plus one update, as one nst iteration.
            optimizer.step(closure)
            sync()
            t0 = time.perf_counter()
            for _ in range(args.iterations_lbfgs):
                loss = optimizer.step(closure)
            final_loss = float(loss)
            sync()
            iteration_seconds.append((time.perf_counter() - t0) / args.iterations_lbfgs)
            print(f"torch_baseline: {size}x{size} L-BFGS run {r + 1}/{args.lbfgs_repeats}: "
                  f"{args.iterations_lbfgs} iterations, {1e3 * iteration_seconds[-1]:.1f} ms each",
                  file=sys.stderr)
        result["lbfgs_iteration_ms"] = summary_ms(iteration_seconds)
        result["lbfgs_loss_after"] = final_loss

    if device.type == "cuda":
        result["peak_bytes"] = torch.cuda.max_memory_allocated(device)
    result["max_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result["backend"] = str(device)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--size", default="256",
                        help="image side N (N x N); a comma-separated list for several")
    parser.add_argument("--weights", help="nst-vgg19 HDF5 file (default: generated weights)")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: default)")
    parser.add_argument("--precision", choices=["fp32", "tf32"], default="tf32",
                        help="CUDA: allow TF32 in cuDNN convolutions and matmuls")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iterations-lbfgs", type=int, default=10)
    parser.add_argument("--lbfgs-repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true",
                        help="print torch's profile of one evaluation per size on stderr")
    args = parser.parse_args()
    sizes = [int(s) for s in args.size.split(",") if s]
    if args.repeats < 1 or args.lbfgs_repeats < 1 or args.warmup < 0 or args.iterations_lbfgs < 0:
        parser.error("--repeats and --lbfgs-repeats must be >= 1, --warmup and --iterations-lbfgs >= 0")

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        tf32 = args.precision == "tf32"
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = True  # nst chooses cuDNN algorithms once per shape too

    layers, pre = file_weights(args.weights) if args.weights else generated_weights()
    report = {
        "tool": "torch_baseline",
        "version": torch.__version__,
        "device": args.device,
        "precision": args.precision,
        "threads_requested": args.threads,
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "warmup": args.warmup,
        "iterations_lbfgs": args.iterations_lbfgs,
        "lbfgs_repeats": args.lbfgs_repeats,
        "weights": args.weights or "generated",
        "objective": {"content_layers": list(CONTENT_LAYERS), "style_layers": list(STYLE_LAYERS),
                      "content_weight": CONTENT_WEIGHT, "style_weight": STYLE_WEIGHT, "tv_weight": 0.0,
                      "pool": "avg"},
        "machine": {"cpu": cpu_model(), "hardware_threads": os.cpu_count(),
                    "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
                    "environment": {k: os.environ.get(k) for k in
                                    ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                                     "OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES"]}},
    }
    report["results"] = [run_size(args, layers, pre, device, size) for size in sizes]
    report["max_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
