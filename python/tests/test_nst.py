"""The Python module against the CLI and its own promises: same result bit for bit,
every error class, callbacks, early stop, Ctrl-C, weights reuse, the GIL released.

Run through ctest (python/CMakeLists.txt sets PYTHONPATH and the paths below), or
by hand: PYTHONPATH=build/python NST_TEST_CLI=build/apps/neural-style
NST_TEST_SOURCE=. /usr/bin/python3 -m pytest python/tests
"""
import os
import shutil
import signal
import subprocess
import threading
import time

import numpy as np
import pytest

import nst

SOURCE = os.environ.get("NST_TEST_SOURCE", os.path.join(os.path.dirname(__file__), "..", ".."))
CLI = os.environ.get("NST_TEST_CLI", os.path.join(SOURCE, "build", "apps", "neural-style"))
# A narrow VGG-19 (same topology, 3-5 channels): runs take well under a second.
NARROW = os.path.join(SOURCE, "tests", "reference", "narrow_vgg19.h5")

# Options every small run here shares (CLI spelling, then keyword arguments).
CLI_OPTIONS = ["--device", "cpu", "--size", "40", "--iterations", "6", "--init", "noise",
               "--seed", "3", "--lbfgs-history", "5", "--quiet"]
KWARGS = dict(device="cpu", size=40, iterations=6, init="noise", seed=3, lbfgs_history=5)


def random_image(height, width, seed):
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def weights():
    return nst.Weights(NARROW)


@pytest.fixture()
def images(tmp_path):
    content, style = tmp_path / "content.png", tmp_path / "style.png"
    nst.save_image(content, random_image(32, 40, 1))
    nst.save_image(style, random_image(36, 36, 2))
    return content, style


def run_cli(content, style, output, *extra):
    command = [CLI, "--content", str(content), "--style", str(style), "--weights", NARROW,
               "--output", str(output), *CLI_OPTIONS, *extra]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return output.read_bytes()


@pytest.mark.parametrize("extra, kwargs", [
    ([], {}),
    (["--preserve-colors", "luminance", "--tv-weight", "0.5"], dict(preserve_colors="luminance", tv_weight=0.5)),
    (["--optimizer", "adam", "--scales", "2"], dict(optimizer="adam", scales=2)),
    (["--tile", "16", "--pool", "max"], dict(tile=16, pool="max")),
    (["--lbfgs-history-precision", "fp16"], dict(lbfgs_history_precision="fp16")),
])
def test_same_result_as_the_cli_bit_for_bit(tmp_path, images, weights, extra, kwargs):
    content, style = images
    expected = run_cli(content, style, tmp_path / "cli.png", *extra)
    out = nst.stylize(content, style, weights=weights, **KWARGS, **kwargs)
    assert out.dtype == np.float32 and out.shape == (32, 40, 3)
    nst.save_image(tmp_path / "py.png", out)
    assert (tmp_path / "py.png").read_bytes() == expected
    # Arrays in give the same as paths in (the PNG holds exactly these 8-bit values).
    from_arrays = nst.stylize(nst.load_image(content), nst.load_image(style), weights=weights,
                              **KWARGS, **kwargs)
    assert np.array_equal(from_arrays, out)


def test_uint8_and_float_inputs_agree(weights):
    content, style = random_image(32, 40, 4), random_image(36, 36, 5)
    a = nst.stylize(content, style, weights=weights, **KWARGS)
    b = nst.stylize(content.astype(np.float32) / 255, style.astype(np.float64) / 255,
                    weights=weights, **KWARGS)
    # uint8 → v/255 in float32 either way; float64 is rounded to float32 first.
    assert np.array_equal(a, b)


def test_usage_errors_are_value_errors_with_the_cli_message_in_keywords(images, weights):
    content, style = images
    with pytest.raises(ValueError, match=r"^style_scale must be in \(0, 8\]"):
        nst.stylize(content, style, weights=weights, style_scale=9)
    with pytest.raises(ValueError, match="^optimizer: 'sgd' is not one of lbfgs, adam"):
        nst.stylize(content, style, weights=weights, optimizer="sgd")
    with pytest.raises(ValueError, match="^lbfgs_history_precision: 'fp8' is not one of fp32, bf16, fp16"):
        nst.stylize(content, style, weights=weights, lbfgs_history_precision="fp8")
    with pytest.raises(ValueError, match="must have shape"):
        nst.stylize(np.zeros((4, 4, 2), np.uint8), style, weights=weights)
    with pytest.raises(TypeError):
        nst.stylize(content, style, weights=weights, size="big")
    with pytest.raises(ValueError, match="^style_weight must be at most 1e24"):
        nst.stylize(content, style, weights=weights, style_weight=1e308)
    with pytest.raises(ValueError, match="^learning_rate must be at most 1e6"):
        nst.stylize(content, style, weights=weights, learning_rate=1e30)


def test_bad_images_and_weights_are_input_errors(tmp_path, images, weights):
    content, style = images
    assert issubclass(nst.InputError, ValueError)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(nst.InputError, match="corrupt.png"):
        nst.stylize(corrupt, style, weights=weights)
    with pytest.raises(nst.InputError, match="no-such.h5"):
        nst.Weights(tmp_path / "no-such.h5")
    with pytest.raises(nst.InputError):
        nst.load_image(tmp_path / "missing.jpg")
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(nst.InputError, match="FIFO"):  # refused, not waited on
        nst.load_image(fifo)


def test_out_of_memory_is_a_memory_error(images, weights):
    content, style = images
    # 2 x 10000 history vectors of 3 x 1024 x 820 floats: about 200 GB, refused up front
    # by the memory plan, with the fix.
    with pytest.raises(MemoryError, match=r"out of memory before starting: .* try lbfgs_history.* \(the table: nst.plan\(\)\)"):
        nst.stylize(content, style, weights=weights, device="cpu", size=1024, iterations=2,
                    lbfgs_history=10000)


def test_max_memory_refuses_up_front(images, weights):
    content, style = images
    with pytest.raises(MemoryError, match=r"out of memory before starting: .* are allowed \(max_memory\)"):
        nst.stylize(content, style, weights=weights, **KWARGS, max_memory=64 * 1024)


def test_callback_reports_and_early_stop(images, weights):
    content, style = images
    reports = []
    nst.stylize(content, style, weights=weights, **KWARGS, callback=reports.append)
    assert [r.iteration for r in reports] == list(range(7))
    for r in reports:
        assert r.loss == pytest.approx(r.content_loss + 1e3 * r.style_loss + 0 * r.tv_loss, rel=1e-12)
    seen = []

    def stop_at_two(report):
        seen.append(report.iteration)
        return report.iteration < 2

    out = nst.stylize(content, style, weights=weights, **KWARGS, callback=stop_at_two)
    assert seen == [0, 1, 2] and out.shape == (32, 40, 3)


def test_an_exception_in_the_callback_propagates(images, weights):
    content, style = images

    def fail(report):
        if report.iteration == 1:
            raise KeyError("from the callback")

    with pytest.raises(KeyError, match="from the callback"):
        nst.stylize(content, style, weights=weights, **KWARGS, callback=fail)


def test_ctrl_c_cancels_after_the_current_iteration(images, weights):
    content, style = images
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt) as interrupt:
        nst.stylize(content, style, weights=weights, **{**KWARGS, "iterations": 1000000})
    timer.cancel()
    # One narrow iteration at 40 px takes milliseconds: the stop is prompt.
    assert time.monotonic() - start < 30
    # The image reached comes with the interrupt.
    result = interrupt.value.result
    assert result.stopped_early and result.stop_reason == "stopped"
    assert 0 < result.iterations < 1000000 and result.image.shape == (32, 40, 3)


def test_weights_are_read_once_and_reused(tmp_path, images):
    content, style = images
    copy = tmp_path / "weights.h5"
    shutil.copy(NARROW, copy)
    loaded = nst.Weights(copy)
    first = nst.stylize(content, style, weights=loaded, **KWARGS)
    copy.unlink()  # a second read would fail now
    second = nst.stylize(content, style, weights=loaded, **KWARGS)
    assert np.array_equal(first, second)


def test_the_gil_is_released_while_the_engine_runs(images, weights):
    content, style = images
    done = []
    worker = threading.Thread(target=lambda: done.append(nst.stylize(
        content, style, weights=weights, **{**KWARGS, "size": 96, "iterations": 60})))
    worker.start()
    ticks = 0
    while worker.is_alive():
        ticks += 1  # runs only while the worker does not hold the GIL
        time.sleep(0.001)
    worker.join()
    assert done and done[0].shape[2] == 3
    # A run holding the GIL would let this loop run only at its start and end.
    assert ticks > 20, ticks


def test_load_and_save_round_trip(tmp_path):
    pixels = random_image(17, 23, 6)
    nst.save_image(tmp_path / "x.png", pixels)
    back = nst.load_image(tmp_path / "x.png")
    assert back.shape == (17, 23, 3) and back.dtype == np.float32
    assert np.array_equal(np.round(back * 255).astype(np.uint8), pixels)


def test_help_reads_well():
    doc = nst.stylize.__doc__
    for word in ("content", "style_weight", "preserve_colors", "callback", "KeyboardInterrupt"):
        assert word in doc
    assert "size: int = 512" in doc and "iterations: int = 500" in doc
