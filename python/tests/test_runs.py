"""What a run gives back: nst.stylize_result's Result (the image and how the run went),
the callback's Report with the current image on demand, and Ctrl-C, which stops the run
and raises KeyboardInterrupt carrying the Result reached.

Run through ctest, or as python/tests/test_nst.py says."""
import os
import signal
import threading

import numpy as np
import pytest

import nst

SOURCE = os.environ.get("NST_TEST_SOURCE", os.path.join(os.path.dirname(__file__), "..", ".."))
NARROW = os.path.join(SOURCE, "tests", "reference", "narrow_vgg19.h5")
KWARGS = dict(device="cpu", size=40, iterations=6, init="noise", seed=3, lbfgs_history=5)


@pytest.fixture(scope="module")
def weights():
    return nst.Weights(NARROW)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(1)
    return (rng.integers(0, 256, size=(32, 40, 3), dtype=np.uint8),
            rng.integers(0, 256, size=(36, 36, 3), dtype=np.uint8))


def test_the_result_says_how_the_run_went(images, weights):
    content, style = images
    reports = []
    result = nst.stylize_result(content, style, weights=weights, **KWARGS, callback=reports.append)
    last = reports[-1]
    assert isinstance(result, nst.Result)
    assert result.stopped_early is False and result.stop_reason == "iterations"
    assert result.iterations == 6 and result.evaluations == last.evaluations
    assert result.backend == "cpu" and result.style_weight == 1e3  # the narrow file is not normalised
    # The final loss and its terms are those of the returned image: the last report's.
    assert result.loss == last.loss
    assert (result.content_loss, result.style_loss, result.tv_loss) == \
        (last.content_loss, last.style_loss, last.tv_loss)
    assert result.seconds >= last.seconds > 0 and result.peak_bytes >= last.peak_bytes > 0
    # The image: as stylize returns it, and what np.asarray makes of the result.
    plain = nst.stylize(content, style, weights=weights, **KWARGS)
    np.testing.assert_array_equal(result.image, plain)
    np.testing.assert_array_equal(np.asarray(result), plain)
    assert np.asarray(result, dtype=np.float64).dtype == np.float64
    assert "iterations after 6 iterations" in repr(result)


def test_a_callback_stop_is_marked_stopped_early(images, weights):
    content, style = images
    result = nst.stylize_result(content, style, weights=weights, **KWARGS,
                                callback=lambda r: r.iteration < 2)
    assert result.stopped_early and result.stop_reason == "stopped" and result.iterations == 2


def test_the_callback_gets_the_current_image_on_demand(images, weights):
    content, style = images
    seen = {}

    def keep_iteration_3(report):
        if report.iteration == 3:
            seen["image"] = report.image()
            seen["report"] = report
            return False  # the run stops here: its result is this image
        return None

    out = nst.stylize(content, style, weights=weights, **KWARGS, preserve_colors="luminance",
                      callback=keep_iteration_3)
    image = seen["image"]
    assert image.dtype == np.float32 and image.shape == (32, 40, 3)
    np.testing.assert_array_equal(image, out)  # as it would be returned: colour control applied
    # Only while the callback runs: afterwards the run has moved on (or ended).
    with pytest.raises(ValueError, match=r"Report.image\(\) is only available while the callback runs"):
        seen["report"].image()


def test_reports_count_iterations_over_the_whole_run(images, weights):
    content, style = images
    reports = []
    nst.stylize(content, style, weights=weights, **{**KWARGS, "scale_sizes": [24, 40],
                                                    "scale_iterations": [3, 4]}, callback=reports.append)
    assert [(r.scale, r.iteration, r.run_iteration) for r in reports] == \
        [(0, i, i) for i in range(4)] + [(1, i, 3 + i) for i in range(5)]
    assert {r.run_iterations for r in reports} == {7}


def test_keyboard_interrupt_in_the_callback_keeps_the_image_reached(images, weights):
    content, style = images
    seen = {}

    def interrupt_at_4(report):
        if report.iteration == 4:
            seen["image"] = report.image()
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as interrupt:
        nst.stylize(content, style, weights=weights, **KWARGS, callback=interrupt_at_4)
    result = interrupt.value.result
    assert result.stopped_early and result.stop_reason == "stopped" and result.iterations == 4
    np.testing.assert_array_equal(result.image, seen["image"])


def test_sigint_from_another_thread_stops_and_keeps_the_image(images, weights):
    content, style = images
    started = threading.Event()

    def callback(report):
        if report.iteration == 2:
            started.set()

    threading.Thread(target=lambda: started.wait(60) and os.kill(os.getpid(), signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt) as interrupt:
        nst.stylize_result(content, style, weights=weights, **{**KWARGS, "iterations": 1000000},
                           callback=callback)
    result = interrupt.value.result
    assert result.stopped_early and 2 <= result.iterations < 1000000
    assert result.image.shape == (32, 40, 3) and np.isfinite(result.image).all()


def test_other_exceptions_of_the_callback_propagate_unchanged(images, weights):
    content, style = images

    def fail(report):
        if report.iteration == 1:
            raise KeyError("from the callback")

    with pytest.raises(KeyError, match="from the callback") as error:
        nst.stylize(content, style, weights=weights, **KWARGS, callback=fail)
    assert not hasattr(error.value, "result")
