"""Images in and out of the Python module: the result is in [0, 1].

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


# ---- the result's range --------------------------------------------------------------------------

@pytest.mark.parametrize("extra", [{}, {"preserve_colors": "luminance"}, {"optimizer": "adam"}])
def test_the_result_is_within_0_and_1(weights, extra):
    # A style weight a million times the default on the narrow network pushes pixels far
    # out of [0, 1] (unclamped, these runs reach -0.1 to -0.5 and 1.1 to 1.5); the result is clamped.
    content, style = random_image(32, 40, 1), random_image(36, 36, 2)
    out = nst.stylize(content, style, weights=weights,
                      **{**KWARGS, "style_weight": 1e9, "iterations": 20, **extra})
    assert out.min() >= 0 and out.max() <= 1, (out.min(), out.max())
    assert (out == 0).any() or (out == 1).any()  # the clamp was needed: the run left the range
