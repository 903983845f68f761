"""Images in and out of the Python module: the result is in [0, 1]; every image-like a
Python user holds (paths, arrays of uint8, uint16 or floats in [0, 1], RGBA, grey, PIL
images, anything with __array__) gives the same run as its uint8 or float array; the rest
is refused with TypeError or ValueError saying what is accepted.

Run through ctest, or as python/tests/test_nst.py says."""
import os

import numpy as np
import pytest

import nst

SOURCE = os.environ.get("NST_TEST_SOURCE", os.path.join(os.path.dirname(__file__), "..", ".."))
NARROW = os.path.join(SOURCE, "tests", "reference", "narrow_vgg19.h5")
KWARGS = dict(device="cpu", size=40, iterations=6, init="noise", seed=3, lbfgs_history=5)


@pytest.fixture(scope="module")
def weights():
    return nst.Weights(NARROW)


def random_image(height, width, seed, channels=3):
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, channels), dtype=np.uint8)


@pytest.fixture(scope="module")
def reference(weights):
    """A run from uint8 arrays, which every other form of the same pixels must equal."""
    content, style = random_image(32, 40, 1), random_image(36, 36, 2)
    return content, style, nst.stylize(content, style, weights=weights, **KWARGS)


# ---- the result's range --------------------------------------------------------------------------

@pytest.mark.parametrize("extra", [{}, {"preserve_colors": "luminance"}, {"optimizer": "adam"}])
def test_the_result_is_within_0_and_1(weights, extra):
    # A style weight a million times the default on the narrow network pushes pixels far
    # out of [0, 1] (unclamped, these runs reach -0.1 to -0.5 and 1.1 to 1.5); the result is clamped.
    content, style = random_image(32, 40, 1), random_image(36, 36, 2)
    seen = []
    result = nst.stylize_result(content, style, weights=weights,
                                **{**KWARGS, "style_weight": 1e9, "iterations": 20, **extra},
                                callback=lambda r: seen.append(r.image()) if r.iteration == 20 else None)
    out = result.image
    assert out.min() >= 0 and out.max() <= 1, (out.min(), out.max())
    assert (out == 0).any() or (out == 1).any()  # the clamp was needed: the run left the range
    np.testing.assert_array_equal(seen[-1], out)  # the callback's image is the same, clamped


# ---- floats --------------------------------------------------------------------------------------

def test_floats_outside_0_and_1_are_refused_with_the_fix(reference, weights):
    content, style, _ = reference
    with pytest.raises(ValueError, match=r"content has values in \[\d+, 25\d\], but float images must be in \[0, 1\]: divide 0-255 values by 255"):
        nst.stylize(content.astype(np.float32), style, weights=weights, **KWARGS)
    slightly = content.astype(np.float64) / 255
    slightly[0, 0, 0] = -1e-3
    with pytest.raises(ValueError, match=r"style has values in \[-0.001, 1\]"):
        nst.stylize(content, slightly, weights=weights, **KWARGS)
    with pytest.raises(nst.InputError, match="NaN"):
        nst.stylize(np.full((32, 40, 3), np.nan), style, weights=weights, **KWARGS)


def test_float16_float32_and_float64_agree(reference, weights):
    content, style, out = reference
    for dtype in (np.float32, np.float64):
        # v/255 rounds to the same float32 either way; float64 is rounded to float32 first.
        got = nst.stylize(content.astype(dtype) / 255, style.astype(dtype) / 255, weights=weights, **KWARGS)
        np.testing.assert_array_equal(got, out)


# ---- integer images ------------------------------------------------------------------------------

def test_uint16_is_read_as_16_bit_levels(reference, weights):
    content, style, out = reference
    # v·257 / 65535 is v / 255 exactly, so the run is the same.
    got = nst.stylize(content.astype(np.uint16) * 257, style.astype(np.uint16) * 257, weights=weights, **KWARGS)
    np.testing.assert_array_equal(got, out)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int16, np.int8, np.uint32, np.uint64])
def test_other_integer_types_are_refused_clearly(reference, weights, dtype):
    content, style, _ = reference
    with pytest.raises(TypeError, match=r"content: integer images must be uint8 \(0-255\) or uint16 "
                                        rf"\(0-65535\), got {np.dtype(dtype)}; .*astype\(np.uint8\)"):
        nst.stylize(content.astype(dtype), style, weights=weights, **KWARGS)


def test_bool_and_complex_arrays_are_refused(reference, weights):
    content, style, _ = reference
    for bad in (content > 128, content.astype(np.complex64)):
        with pytest.raises(TypeError, match="must be uint8, uint16 or floating point"):
            nst.stylize(bad, style, weights=weights, **KWARGS)


# ---- channels ------------------------------------------------------------------------------------

def test_rgba_drops_the_alpha_channel(reference, weights):
    content, style, out = reference
    alpha = random_image(32, 40, 9, channels=1)  # any alpha: it is dropped, not composited
    got = nst.stylize(np.concatenate([content, alpha], axis=2), style, weights=weights, **KWARGS)
    np.testing.assert_array_equal(got, out)


def test_grey_images_are_their_grey_rgb(weights):
    grey, style = random_image(32, 40, 3, channels=1), random_image(36, 36, 2)
    expected = nst.stylize(np.repeat(grey, 3, axis=2), style, weights=weights, **KWARGS)
    np.testing.assert_array_equal(nst.stylize(grey[:, :, 0], style, weights=weights, **KWARGS), expected)
    np.testing.assert_array_equal(nst.stylize(grey, style, weights=weights, **KWARGS), expected)


def test_other_shapes_are_refused_and_channels_first_is_named(reference, weights):
    content, style, _ = reference
    with pytest.raises(ValueError, match=r"must have shape .*got \(32, 40, 2\)$"):
        nst.stylize(content[:, :, :2], style, weights=weights, **KWARGS)
    with pytest.raises(ValueError, match=r"got \(3, 32, 40\); channels first\? np.transpose"):
        nst.stylize(np.transpose(content, (2, 0, 1)), style, weights=weights, **KWARGS)


# ---- other array-likes ---------------------------------------------------------------------------

class ArrayLike:
    """Neither an ndarray nor a sequence: only __array__ (as xarray, pandas, dask ... have)."""

    def __init__(self, array):
        self._array = array

    def __array__(self, dtype=None):
        return self._array if dtype is None else self._array.astype(dtype)


def test_anything_with_array_is_accepted(reference, weights):
    content, style, out = reference
    got = nst.stylize(ArrayLike(content), [ArrayLike(style)], weights=weights, **KWARGS)
    np.testing.assert_array_equal(got, out)


def test_pil_images_are_accepted(reference, weights):
    Image = pytest.importorskip("PIL.Image")
    content, style, out = reference
    got = nst.stylize(Image.fromarray(content), Image.fromarray(style), weights=weights, **KWARGS)
    np.testing.assert_array_equal(got, out)
    rgba = Image.fromarray(content).convert("RGBA")
    np.testing.assert_array_equal(nst.stylize(rgba, style, weights=weights, **KWARGS), out)
    grey = random_image(32, 40, 3, channels=1)
    np.testing.assert_array_equal(
        nst.stylize(Image.fromarray(grey[:, :, 0]), style, weights=weights, **KWARGS),
        nst.stylize(grey, style, weights=weights, **KWARGS))
    palette = Image.fromarray(content).convert("P")  # a mode nst converts to RGB
    np.testing.assert_array_equal(
        nst.stylize(palette, style, weights=weights, **KWARGS),
        nst.stylize(np.asarray(palette.convert("RGB")), style, weights=weights, **KWARGS))


@pytest.mark.parametrize("bad", [object(), {"pixels": 1}, 3.5, [[0, 1], [1, 0]], b"photo.jpg"])
def test_other_types_are_type_errors_naming_what_is_accepted(reference, weights, bad):
    _, style, _ = reference
    with pytest.raises(TypeError, match=r"content must be a path, a PIL image, or an array .* uint8, "
                                        r"uint16 or floats in \[0, 1\]; got "):
        nst.stylize(bad, style, weights=weights, **KWARGS)


def test_a_torch_tensor_is_a_type_error_with_the_conversion(reference, weights):
    torch = pytest.importorskip("torch")
    content, style, _ = reference
    tensor = torch.from_numpy(content.astype(np.float32) / 255).permute(2, 0, 1)
    with pytest.raises(TypeError, match=r"content is a torch.Tensor; .*tensor.permute\(1, 2, 0\).cpu\(\).numpy\(\)"):
        nst.stylize(tensor, style, weights=weights, **KWARGS)


# ---- out: PIL ------------------------------------------------------------------------------------

def test_to_pil_gives_the_levels_save_image_writes(tmp_path, reference):
    Image = pytest.importorskip("PIL.Image")
    _, _, out = reference
    picture = nst.to_pil(out)
    assert isinstance(picture, Image.Image) and picture.mode == "RGB" and picture.size == (40, 32)
    nst.save_image(tmp_path / "out.png", out)
    with Image.open(tmp_path / "out.png") as saved:
        np.testing.assert_array_equal(np.asarray(picture), np.asarray(saved))
    # round(v · 255), halves up.
    levels = np.asarray(nst.to_pil(np.array([[[0.0, 0.5, 1.0]] * 2] * 2, np.float32)))
    assert levels[0, 0].tolist() == [0, 128, 255]
