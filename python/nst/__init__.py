"""nst: neural style transfer (Gatys, Ecker and Bethge, CVPR 2016) on the CPU or an NVIDIA GPU.

    import nst
    out = nst.stylize("photo.jpg", "painting.jpg", size=512, iterations=500)
    nst.save_image("out.png", out)

Images in: a path; a NumPy array, or anything with __array__, of shape (H, W, 3),
(H, W, 4) (the alpha channel is dropped, not composited) or (H, W) (grey), of uint8
(0-255), uint16 (0-65535) or floats in [0, 1]; or a PIL image. Images out: float32
(H, W, 3) in [0, 1]; nst.to_pil makes a PIL image of one. Load weights once with
nst.Weights to reuse them; nst.plan says what a run will hold in memory before it runs;
nst.stylize_result returns the image with how the run went.
"""
import ast
import difflib
import errno
import inspect
import os
import sys

import numpy as np

from . import _nst
from ._nst import BatchJob, BatchStatus, BatchSummary, InputError, MemoryPlan, Report, Result, ScalePlan, Weights, __version__, run_options
from ._progress import progress_display

__all__ = ["stylize", "stylize_result", "stylize_video", "plan", "batch", "batch_status", "BatchSummary",
           "BatchStatus", "BatchJob", "load_image", "save_image", "to_pil", "Weights",
           "Report", "Result", "MemoryPlan", "ScalePlan", "InputError", "run_options", "__version__"]

# ---- images ------------------------------------------------------------------------------------

IMAGES_ACCEPTED = ("a path, a PIL image, or an array (a NumPy array or anything with __array__) of "
                   "shape (H, W, 3), (H, W, 4) or (H, W), of uint8, uint16 or floats in [0, 1]")
# Integer images are levels: v / 255 (as 8-bit files decode) or v / 65535 (16-bit PNGs).
_LEVELS = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}


def _pil_array(image, what):
    """A PIL image's pixels as an array the rules of _image() take."""
    if image.mode in ("RGB", "RGBA", "L", "F") or image.mode.startswith("I;16"):
        return np.asarray(image)
    if image.mode == "I":  # 32-bit integers: Pillow opens 16-bit PNGs so
        levels = np.asarray(image)
        if levels.size and (levels.min() < 0 or levels.max() > 65535):
            raise ValueError(f"{what}: a PIL image of mode I is read as 16-bit, but holds values "
                             f"in [{levels.min()}, {levels.max()}]")
        return levels.astype(np.uint16)
    return np.asarray(image.convert("RGB"))  # palette, CMYK, YCbCr, 1-bit, LA ...: RGB, alpha dropped


def _image(value, what):
    """A path (str), or a float32 array (H, W, 3) in [0, 1] (what nst._nst takes), from any
    image-like nst accepts; TypeError for other types, ValueError for shapes and ranges."""
    if isinstance(value, (str, os.PathLike)):
        return os.fsdecode(value)
    pil = sys.modules.get("PIL.Image")  # a PIL image means PIL is imported already
    if pil is not None and isinstance(value, pil.Image):
        value = _pil_array(value, what)
    module = type(value).__module__.split(".")[0]
    if module == "torch":  # has __array__, but (C, H, W) on any device: say how to convert it
        raise TypeError(f"{what} is a {type(value).__module__}.{type(value).__name__}; nst takes "
                        f"{IMAGES_ACCEPTED}. For a tensor (3, H, W) in [0, 1]: "
                        "tensor.permute(1, 2, 0).cpu().numpy()")
    if not isinstance(value, np.ndarray) and not hasattr(value, "__array__"):
        raise TypeError(f"{what} must be {IMAGES_ACCEPTED}; got {type(value).__name__}")
    array = np.asarray(value)
    if array.dtype.byteorder not in "=|":  # big-endian 16-bit PIL images, for one
        array = array.astype(array.dtype.newbyteorder("="))
    channels = 1 if array.ndim == 2 else array.shape[2] if array.ndim == 3 else 0
    if channels not in (1, 3, 4):
        hint = ""
        if array.ndim == 3 and array.shape[0] in (1, 3, 4):
            hint = "; channels first? np.transpose(image, (1, 2, 0)) puts them last"
        raise ValueError(f"{what} must have shape (H, W, 3), (H, W, 4) (alpha dropped) or (H, W) "
                         f"(grey), got {array.shape}{hint}")
    if array.dtype not in _LEVELS and array.dtype.kind != "f":
        if array.dtype.kind in "iu":
            raise TypeError(f"{what}: integer images must be uint8 (0-255) or uint16 (0-65535), got "
                            f"{array.dtype}; for values 0-255 use image.astype(np.uint8)")
        raise TypeError(f"{what} must be uint8, uint16 or floating point, got dtype {array.dtype}")
    if array.shape[0] < 2 or array.shape[1] < 2:
        raise InputError(f"{what} is smaller than 2x2")
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    array = np.repeat(array, 3, axis=2) if channels == 1 else array[:, :, :3]
    if array.dtype in _LEVELS:
        return np.ascontiguousarray(array.astype(np.float32) / np.float32(_LEVELS[array.dtype]))
    if not np.isfinite(array).all():
        raise InputError(f"{what} holds a NaN or infinite value")
    pixels = np.ascontiguousarray(array, dtype=np.float32)  # float64 rounds to the nearest float32
    # The float32 values are held to [0, 1] exactly, with no tolerance: what the engine reads
    # is these values, and a computation that stays in [0, 1] rounds into it (rounding is
    # monotonic and both ends are representable).
    low, high = float(pixels.min()), float(pixels.max())
    if low < 0 or high > 1:
        raise ValueError(f"{what} has values in [{low:g}, {high:g}], but float images must be in "
                         "[0, 1]: divide 0-255 values by 255 (or pass them as uint8), or clip with "
                         "np.clip(image, 0, 1)")
    return pixels


def load_image(path):
    """Decodes a PNG or JPEG (EXIF orientation applied) into float32 (H, W, 3) in [0, 1].
    Raises nst.InputError for a missing, corrupt or unsupported file."""
    return _nst._load_image(os.fsdecode(path))


# save_image's failures come from the engine as "cannot write 'PATH': <strerror>"; the reason
# gives back the errno, so that the OSError is the subclass Python would raise (FileNotFoundError
# for a missing folder, PermissionError, IsADirectoryError ...).
_ERRNO_OF_REASON = {os.strerror(code): code for code in errno.errorcode}


def save_image(path, image):
    """Writes an image (anything stylize takes as one) as 8-bit PNG or JPEG, chosen by the
    extension, atomically: a failure never leaves a partial file. Raises ValueError for an
    unsupported extension and an OSError (FileNotFoundError, PermissionError ...) when the
    file cannot be written."""
    path = os.fsdecode(path)
    pixels = _image(image, "image")
    try:
        _nst._save_image(path, pixels)
    except RuntimeError as error:
        reason = str(error).rsplit(": ", 1)[-1]
        code = _ERRNO_OF_REASON.get(reason)
        raise (OSError(code, reason, path) if code else OSError(str(error))) from None


def to_pil(image):
    """A PIL image (mode RGB) of an image nst returns (an array, a Result, anything stylize
    takes as an image), with the 8-bit levels save_image writes: round(clip(v, 0, 1) * 255)."""
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("nst.to_pil needs Pillow (Debian: python3-pil, pip: pillow)") from None
    pixels = _image(image, "image")
    if isinstance(pixels, str):
        pixels = load_image(pixels)
    return Image.fromarray(_nst._to_8bit(pixels), "RGB")


# ---- keyword arguments -------------------------------------------------------------------------

# Keyword arguments of a run that are not run options: (keyword, type, default, help), those
# before the run options, then those after them in the signature.
_FRONT_BEFORE = (
    ("weights", "Weights | str | os.PathLike | None", None,
     "an nst.Weights, a path, or None: $NST_WEIGHTS, then ~/.cache/nst/vgg19.h5"),
    ("init", "str | image", "content", "'noise', 'content', 'style', or an image (seed: of the noise)"),
    ("scales", "int", 1, "coarse to fine: N sizes halving up to size (or scale_sizes, coarsest first)"),
)
_FRONT_AFTER = (
    ("style_masks", "list[image] | None", None, "one output region (white) per style"),
    ("style_image_masks", "list[image | None] | None", None,
     "each style image's own region (None entries: the whole image)"),
    ("content_mask", "image | None", None, "the content loss's region"),
    ("callback", "Callable[[Report], bool | None] | None", None,
     "called after each iteration with an nst.Report; return False to stop early, None or True "
     "to go on"),
    ("progress", "bool | None", None,
     "a progress bar on stderr (tqdm when importable): None shows it when stderr or stdout is a "
     "terminal, or in a notebook"),
)


def _keyword_table():
    """(keyword, type, default value, default as written, help) of every keyword argument."""
    rows = [(k, t, d, repr(d), h) for k, t, d, h in _FRONT_BEFORE]
    for keyword, type_, default, shown, help_ in _nst._keywords():
        if default == "None" and shown:
            help_ += f" (default: {shown})"
        rows.append((keyword, type_, ast.literal_eval(default), default, help_))
    rows += [(k, t, d, repr(d), h) for k, t, d, h in _FRONT_AFTER]
    return rows


_KEYWORDS = _keyword_table()
_KEYWORD_NAMES = [row[0] for row in _KEYWORDS]


def _check_keywords(function, options):
    for name in options:
        if name not in _KEYWORD_NAMES:
            close = difflib.get_close_matches(name, _KEYWORD_NAMES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; help(nst.{function}) lists them"
            raise TypeError(f"{function}() got an unexpected keyword argument {name!r}{hint}")


def _check_weights(value):
    if not (value is None or isinstance(value, (Weights, str, os.PathLike))):
        raise TypeError(f"weights must be an nst.Weights, a path or None, got {type(value).__name__}")


def _weights(value):
    """Weights as given, or read from the path (None: $NST_WEIGHTS, then the cache)."""
    return value if isinstance(value, Weights) else Weights(value)


def _request(function, content, style, options):
    """The engine's request from the arguments of a run; also returns the weights (not yet
    read), the callback and the progress setting."""
    _check_keywords(function, options)
    options = dict(options)
    weights = options.pop("weights", None)
    callback = options.pop("callback", None)
    progress = options.pop("progress", None)
    _check_weights(weights)  # before any image is read
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"progress must be True, False or None, got {type(progress).__name__}")
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    styles = [_image(s, "style" if len(styles) == 1 else f"style {k + 1}") for k, s in enumerate(styles)]
    init = options.get("init")
    if init is not None and not (isinstance(init, str) and init in ("noise", "content", "style")):
        options["init"] = _image(init, "init")
    if options.get("style_masks") is not None:
        options["style_masks"] = [_image(m, f"style mask {k + 1}") for k, m in enumerate(options["style_masks"])]
    if options.get("style_image_masks") is not None:
        options["style_image_masks"] = [None if m is None else _image(m, f"style image mask {k + 1}")
                                        for k, m in enumerate(options["style_image_masks"])]
    if options.get("content_mask") is not None:
        options["content_mask"] = _image(options["content_mask"], "content mask")
    request = _nst._request(None if content is None else _image(content, "content"), styles, options)
    return request, weights, callback, progress


def _on_report(callback, display):
    """What the engine calls after each iteration: the display, then the user's callback,
    whose answer must be None, True or False."""
    if callback is None and display is None:
        return None

    def on_report(report):
        if display is not None:
            display.update(report)
        if callback is None:
            return True
        answer = callback(report)
        if answer is None or answer is True or answer is False or isinstance(answer, np.bool_):
            return answer is None or bool(answer)
        raise TypeError(f"callback must return None, True or False (False stops the run), "
                        f"got {type(answer).__name__}: {answer!r:.60}")

    return on_report


# ---- runs --------------------------------------------------------------------------------------

def _stylize(function, content, style, options):
    request, weights, callback, progress = _request(function, content, style, options)
    loaded = _weights(weights)
    display = progress_display(progress)
    try:
        return _nst._run(request, loaded, _on_report(callback, display))
    finally:
        if display is not None:
            display.close()


def stylize_result(content, style, **options):
    return _stylize("stylize_result", content, style, options)


def stylize(content, style, **options):
    return _stylize("stylize", content, style, options).image


def stylize_video(content, style, output=None, *, work_folder=None, **options):
    if not isinstance(content, (str, os.PathLike)):
        raise TypeError(f"stylize_video: content must be the path of a video or a frame pattern, "
                        f"got {type(content).__name__}")
    content = os.fsdecode(content)
    for name in ("callback", "progress"):
        if name in options:
            raise TypeError(f"stylize_video() reports per frame: iterate over it instead of {name}=")
    request, weights, _, _ = _request("stylize_video", None, style, options)
    loaded = _weights(weights)
    output = None if output is None else os.fsdecode(output)
    temporary = None
    if work_folder is None:
        if output is not None:
            work_folder = _nst._work_folder(output)
        else:
            import tempfile
            temporary = work_folder = tempfile.mkdtemp(prefix="nst-video-")
    run = _nst._VideoRun(request, content, os.fsdecode(work_folder), loaded)

    def frames():
        try:
            while True:
                frame = run.next()
                if frame is None:
                    break
                yield frame
            if output is not None:
                run.write(output, False)
                _nst._remove_work_folder(work_folder)
        finally:
            if temporary is not None:
                _nst._remove_work_folder(temporary)

    return frames()


def plan(content, style, **options):
    request, weights, _, _ = _request("plan", content, style, options)
    return _nst._plan(request, _weights(weights))


# ---- batches -----------------------------------------------------------------------------------

def _batch_arguments(function, manifest, options):
    """`neural-style batch`'s arguments for nst.batch(manifest, **options)."""
    arguments = [] if manifest is None else [os.fsdecode(manifest)]
    for name, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, Weights):
            value = value.path
        if name == "shard" and isinstance(value, (tuple, list)):
            value = f"{value[0]}/{value[1]}"
        if value is True:
            arguments.append(flag)
        elif name == "style" and isinstance(value, (list, tuple)):
            arguments += [f"{flag}={os.fsdecode(v)}" for v in value]
        elif isinstance(value, (list, tuple)):
            arguments.append(f"{flag}=" + ",".join(str(v) for v in value))
        elif isinstance(value, os.PathLike):
            arguments.append(f"{flag}={os.fsdecode(value)}")
        elif not isinstance(value, (str, int, float)):
            raise TypeError(f"{function}: {name} must be text, a number, a path or a list, "
                            f"got {type(value).__name__}")
        else:
            arguments.append(f"{flag}={value}")
    return arguments


def batch(manifest=None, **options):
    return _nst._batch(_batch_arguments("batch", manifest, options))


def batch_status(manifest=None, **options):
    return _nst._batch_status(_batch_arguments("batch_status", manifest, options))


batch.__doc__ = ("""Runs a manifest of jobs as `neural-style batch MANIFEST` does (README, "Batches"):
one process, the weights read once, the style targets computed once per style; jobs
done before with the same options and inputs are skipped, a failing job is recorded
and the others run. `options` are the command line's options of every job (a row's
value wins: size=256, style_weight=1e3, weights=..., device=..., quiet=True) and the
batch's own: shard=(i, n) or "i/n", state= (the records' folder), and instead of a
manifest contents=, styles=, output_pattern= (every pair of two folders). Returns an
nst.BatchSummary (succeeded, failed, skipped, exit_code, jobs). Raises ValueError
naming the manifest's line of every bad row before anything runs. Progress goes to
stderr unless quiet=True. Submitting to Slurm is the command line's (--slurm).""")
batch_status.__doc__ = ("""The state of a batch from its records alone, as `neural-style batch --status`:
an nst.BatchStatus (done, failed, pending, failures with their messages). Runs nothing.""")


# ---- signatures and help, from the option list -------------------------------------------------

def _signature(returns):
    parameter = inspect.Parameter
    parameters = [parameter("content", parameter.POSITIONAL_OR_KEYWORD, annotation="image"),
                  parameter("style", parameter.POSITIONAL_OR_KEYWORD, annotation="image | list[image]")]
    parameters += [parameter(keyword, parameter.KEYWORD_ONLY, default=default, annotation=type_)
                   for keyword, type_, default, _, _ in _KEYWORDS]
    return inspect.Signature(parameters, return_annotation=returns)


_ARGUMENTS_HELP = "".join(f"{keyword}: {type_} = {written}\n    {help_}\n"
                          for keyword, type_, _, written, help_ in _KEYWORDS)

_RUN_HELP = f"""
content, style: {IMAGES_ACCEPTED}; style may be a list of them (blended by
    style_blend_weights, equal by default). An image with alpha has it dropped.

The keyword arguments (the CLI's options, dashes as underscores, and Python's own; None:
the default said in words):

{_ARGUMENTS_HELP}
The run releases the GIL, so other Python threads go on (the weights are read without it too).
Ctrl-C (KeyboardInterrupt) stops the run after the current iteration and is raised then, with
the nst.Result reached as its attribute `result` (in a notebook: sys.last_value.result).
Raises TypeError for an unknown keyword or a value of the wrong type, ValueError for bad
options (messages name the keyword arguments), nst.InputError for bad images or weights,
MemoryError when the run would not fit (nst.plan shows why), RuntimeError for device errors.
"""

stylize.__signature__ = _signature("numpy.ndarray")
stylize.__doc__ = ("Stylises `content` with `style` and returns the image, float32 (H, W, 3) in [0, 1].\n"
                   "nst.stylize_result takes the same arguments and also says how the run went.\n"
                   + _RUN_HELP)
stylize_result.__signature__ = _signature("Result")
stylize_result.__doc__ = ("Stylises `content` with `style`, as nst.stylize, and returns an nst.Result: the\n"
                          "image (result.image, or np.asarray(result)), whether the run stopped early, the\n"
                          "device, the style weight used, the final loss terms, seconds and peak memory.\n"
                          + _RUN_HELP)
stylize_video.__doc__ = ("""Stylises a video frame by frame (Ruder et al.'s temporal loss, the flow's warped
start, multi-pass) and yields (index, frame) as each frame of the last pass is finished:
index in the video (0-based), frame float32 (H, W, 3) in [0, 1].

content: a video file (any container and codec FFmpeg decodes) or a frame pattern
    ('frames/%04d.png'); style as for stylize.
output: None, a video file (.mp4, .mkv: H.264; .webm: VP9; the input's frame rate and
    audio) or a frame pattern, written once every frame is done.
work_folder: where finished frames are kept; None: beside output ('<output>.nst-work'),
    or a temporary folder without one. A new call with the same arguments resumes after
    the last finished frame; the folder is removed once output is written.

Takes the keyword arguments of stylize but callback and progress (the video ones:
temporal_weight, temporal_frames, passes, frame_iterations, frames, flow). Ctrl-C
stops after the current iteration, keeping the finished frames, and raises
KeyboardInterrupt.
""")
plan.__signature__ = _signature("MemoryPlan")
plan.__doc__ = ("The memory a run with these arguments will hold, per scale, before any work (the\n"
                "CLI's --plan): an nst.MemoryPlan with scales (width, height, tiles, items and bytes,\n"
                "set-up and peak bytes), peak_bytes, the budget (max_memory, e.g. '2G', or the free\n"
                "memory) and whether the run fits it; str(plan) is the CLI's table. Takes the\n"
                "arguments of stylize (callback and progress are ignored) and reads the weights.\n"
                + _RUN_HELP)
