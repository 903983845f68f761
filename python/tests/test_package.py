"""What a Python library is expected to have: inspect.signature of the run functions,
their generated help, __version__ (the project's), and the GIL released while the
weights are read. The type stubs: python/tests/test_stubs.py.

Run through ctest, or as python/tests/test_nst.py says."""
import inspect
import os
import re
import threading
import time

import pytest

import nst

SOURCE = os.environ.get("NST_TEST_SOURCE", os.path.join(os.path.dirname(__file__), "..", ".."))
ASSETS = os.environ.get("NST_TEST_ASSETS", os.path.join(SOURCE, "..", "shared", "assets"))


def test_signatures_of_every_run_function():
    stylize = inspect.signature(nst.stylize)
    for function in (nst.stylize_result, nst.plan):
        assert list(inspect.signature(function).parameters.values()) == list(stylize.parameters.values())
    assert str(stylize).startswith("(content: 'image', style: 'image | list[image]', *, weights")
    assert stylize.parameters["max_memory"].default is None and stylize.parameters["progress"].default is None
    for name in ("stylize", "stylize_result", "plan"):
        assert getattr(nst, name).__doc__.count("\n") > 40  # the generated help, every keyword


def test_version_is_the_projects():
    with open(os.path.join(SOURCE, "CMakeLists.txt"), encoding="utf-8") as cmake:
        version = re.search(r"project\(nst VERSION ([0-9.]+)", cmake.read()).group(1)
    assert nst.__version__ == version


def test_other_threads_run_while_weights_are_read():
    # The full network's file takes about a second to read; the narrow one a few ms.
    path = os.path.join(ASSETS, "vgg19", "vgg19-conv-hybrid.h5")
    if not os.path.exists(path):
        pytest.skip(f"{path} not present")
    ticks, stop = [], threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.001)

    ticker = threading.Thread(target=tick)
    ticker.start()
    time.sleep(0.05)
    start = time.monotonic()
    loaded = nst.Weights(path)
    end = time.monotonic()
    stop.set()
    ticker.join()
    assert loaded.layers == 16
    during = [t for t in ticks if start < t < end]
    # A read holding the GIL lets the ticker run only at its start and end.
    assert len(during) > 20 and during[-1] - during[0] > 0.5 * (end - start), (len(during), end - start)
