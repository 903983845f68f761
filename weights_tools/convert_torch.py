#!/usr/bin/python3
"""Converts a PyTorch VGG-19 state dict to the nst-vgg19 HDF5 format, version 1.

    convert_torch.py IN.pth OUT.h5

Two layouts are recognised by their keys (docs/WEIGHTS.md):

  torchvision vgg19   features.{0,2,5,7,10,12,14,16,19,21,23,25,28,30,32,34}.{weight,bias}
                      (classifier.* is ignored). Inputs: RGB in [0,1], normalised with
                      mean [0.485, 0.456, 0.406], std [0.229, 0.224, 0.225].
  Gatys' vgg_conv.pth conv1_1.{weight,bias} ... conv5_4.{weight,bias}. The Caffe VGG-19
                      weights: BGR, values 0..255, minus [103.939, 116.779, 123.68], std 1.

Both store OIHW cross-correlation kernels, as nst does, so the tensors are copied
unchanged. Anything else is refused with one line on stderr and exit code 3.
Exit codes: 0 success, 2 usage, 3 bad input, 4 failure (e.g. cannot write).
"""
import inspect
import os
import sys

PROGRAM = "convert_torch.py"

try:
    import h5py
    import numpy
    import torch
except ImportError as missing:
    print(f"{PROGRAM}: error: needs PyTorch, h5py and NumPy (Debian: python3-torch python3-h5py): "
          f"{missing}", file=sys.stderr)
    sys.exit(4)

TORCHVISION_INDICES = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
LAYERS = ["conv1_1", "conv1_2", "conv2_1", "conv2_2",
          "conv3_1", "conv3_2", "conv3_3", "conv3_4",
          "conv4_1", "conv4_2", "conv4_3", "conv4_4",
          "conv5_1", "conv5_2", "conv5_3", "conv5_4"]
CAFFE = dict(color_order="BGR", pixel_scale=255.0, mean=[103.939, 116.779, 123.68],
             std=[1.0, 1.0, 1.0])
TORCHVISION = dict(color_order="RGB", pixel_scale=1.0, mean=[0.485, 0.456, 0.406],
                   std=[0.229, 0.224, 0.225])


class Failure(Exception):
    """One-line error with an exit code."""

    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


def bad_input(message):
    return Failure(message, 3)


def load_state_dict(path):
    if not os.path.isfile(path):
        raise bad_input(f"'{path}': no such file")
    with open(path, "rb") as f:
        magic = f.read(4)
    # torch.save writes a zip archive (PyTorch >= 1.6) or, before that, pickles.
    if not (magic.startswith(b"PK\x03\x04") or magic.startswith(b"\x80")):
        raise bad_input(f"'{path}': not a PyTorch file (neither a zip archive nor a pickle)")
    kwargs = {"map_location": "cpu"}
    # weights_only (torch >= 1.13) refuses pickled code: a weights file needs none.
    if "weights_only" in inspect.signature(torch.load).parameters:
        kwargs["weights_only"] = True
    try:
        state = torch.load(path, **kwargs)
    except Exception as error:  # torch raises many types for damaged or foreign files
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise bad_input(f"'{path}': cannot be read as a PyTorch state dict ({text})")
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise bad_input(f"'{path}': not a state dict (a dict of named tensors)")
    return state


def pick_layers(path, state):
    """Returns (layout name, preprocessing, [(weight, bias)] * 16) as numpy arrays."""
    if "features.0.weight" in state:
        layout, preprocessing = "torchvision vgg19", TORCHVISION
        keys = [f"features.{i}" for i in TORCHVISION_INDICES]
        conv_keys = {k.rsplit(".", 1)[0] for k, v in state.items()
                     if k.startswith("features.") and k.endswith(".weight")
                     and isinstance(v, torch.Tensor) and v.dim() == 4}
        if conv_keys != set(keys):
            extra = sorted(conv_keys - set(keys), key=lambda k: int(k.split(".")[1]))
            raise bad_input(f"'{path}': the convolutions are at {extra[:3]}... rather than "
                            "torchvision vgg19's features.0, 2, 5, 7, ... 34 (another VGG "
                            "variant, e.g. with batch norm, is not supported)" if extra else
                            f"'{path}': missing torchvision vgg19 convolution(s) "
                            f"{sorted(set(keys) - conv_keys)}")
    elif "conv1_1.weight" in state:
        layout, preprocessing = "Gatys vgg_conv", CAFFE
        keys = LAYERS
    else:
        sample = ", ".join(sorted(state)[:4])
        raise bad_input(f"'{path}': neither torchvision vgg19 (features.0.weight ...) nor "
                        f"Gatys' vgg_conv (conv1_1.weight ...); its keys begin {sample or '(none)'}")

    layers = []
    in_channels = 3
    for name, key in zip(LAYERS, keys):
        for part in ("weight", "bias"):
            if f"{key}.{part}" not in state:
                raise bad_input(f"'{path}': missing {key}.{part} (layer {name})")
        weight, bias = state[f"{key}.weight"], state[f"{key}.bias"]
        if not isinstance(weight, torch.Tensor) or not isinstance(bias, torch.Tensor):
            raise bad_input(f"'{path}': {key}.weight and {key}.bias must be tensors")
        if not weight.is_floating_point() or not bias.is_floating_point():
            raise bad_input(f"'{path}': {key} is not floating point")
        shape = list(weight.shape)
        if len(shape) != 4 or shape[2:] != [3, 3] or shape[1] != in_channels:
            raise bad_input(f"'{path}': {key}.weight has shape {shape}, expected "
                            f"[C_out, {in_channels}, 3, 3] (layer {name})")
        if list(bias.shape) != [shape[0]]:
            raise bad_input(f"'{path}': {key}.bias has shape {list(bias.shape)}, expected "
                            f"[{shape[0]}] (layer {name})")
        weight = weight.detach().to(torch.float32).contiguous().numpy()
        bias = bias.detach().to(torch.float32).contiguous().numpy()
        if not (numpy.isfinite(weight).all() and numpy.isfinite(bias).all()):
            raise bad_input(f"'{path}': {key} has non-finite values")
        layers.append((weight, bias))
        in_channels = shape[0]
    return layout, preprocessing, layers


def fixed_string(text):
    """A fixed-length, NUL-terminated UTF-8 string attribute value, as engine/io/weights.cpp
    writes them: readers never touch HDF5's global heap, whose variable-length string
    code is where libhdf5 1.10 crashed most on hostile files."""
    data = text.encode("utf-8") + b"\0"
    return numpy.array(data, dtype=h5py.string_dtype("utf-8", len(data)))


def write_nst(path, source, preprocessing, layers):
    """nst-vgg19 v1, as engine/io/weights.cpp writes it, via a temporary file and a rename."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise Failure(f"cannot write '{path}': no folder '{directory}'", 4)
    temporary = os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        with h5py.File(temporary, "w") as f:
            f.attrs["format"] = fixed_string("nst-vgg19")
            f.attrs["format_version"] = numpy.int32(1)
            f.attrs["color_order"] = fixed_string(preprocessing["color_order"])
            f.attrs["pixel_scale"] = numpy.float32(preprocessing["pixel_scale"])
            f.attrs["mean"] = numpy.array(preprocessing["mean"], dtype=numpy.float32)
            f.attrs["std"] = numpy.array(preprocessing["std"], dtype=numpy.float32)
            f.attrs["source"] = fixed_string(source)
            for name, (weight, bias) in zip(LAYERS, layers):
                group = f.create_group(name)
                group.create_dataset("weight", data=weight, dtype=numpy.float32,
                                     compression="gzip", compression_opts=4)
                group.create_dataset("bias", data=bias, dtype=numpy.float32,
                                     compression="gzip", compression_opts=4)
        with open(temporary, "rb") as f:
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except OSError as error:
        reason = error.strerror or str(error).split(" (")[0]
        raise Failure(f"cannot write '{path}' ({reason})", 4)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def main(argv):
    if len(argv) == 2 and argv[1] in ("-h", "--help"):
        print(f"usage: {PROGRAM} IN.pth OUT.h5\n"
              "Converts torchvision's vgg19 state dict or Gatys' vgg_conv.pth to nst-vgg19.")
        return 0
    if len(argv) != 3:
        print(f"{PROGRAM}: error: expected 2 arguments, got {len(argv) - 1} "
              f"(usage: {PROGRAM} IN.pth OUT.h5)", file=sys.stderr)
        return 2
    source_path, output_path = argv[1], argv[2]
    try:
        state = load_state_dict(source_path)
        layout, preprocessing, layers = pick_layers(source_path, state)
        source = f"{layout} state dict {os.path.basename(source_path)} (converted from PyTorch)"
        write_nst(output_path, source, preprocessing, layers)
    except Failure as error:
        print(f"{PROGRAM}: error: {error}", file=sys.stderr)
        return error.code
    print(f"converted {layout} '{source_path}' into '{output_path}'")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
