"""stylize's progress display: off by default when nobody watches (stderr not a terminal,
no notebook), on when stderr is a terminal, forced by progress=True/False; tqdm when
importable, else one line on stderr rewritten in place; both show iteration/total,
it/s, the time left and the loss.

Run through ctest, or as python/tests/test_nst.py says."""
import os
import sys

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


@pytest.fixture()
def without_tqdm(monkeypatch):
    for name in ("tqdm", "tqdm.auto"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError


def test_off_by_default_when_stderr_is_no_terminal(capsys, images, weights):
    nst.stylize(*images, weights=weights, **KWARGS)
    assert capsys.readouterr().err == ""


def test_on_by_default_when_stderr_is_a_terminal(capsys, monkeypatch, images, weights):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    nst.stylize(*images, weights=weights, **KWARGS)
    assert "6/6" in capsys.readouterr().err
    nst.stylize(*images, weights=weights, **KWARGS, progress=False)
    assert capsys.readouterr().err == ""


def test_tqdm_bar(capsys, images, weights):
    pytest.importorskip("tqdm")
    nst.stylize(*images, weights=weights, **KWARGS, progress=True)
    err = capsys.readouterr().err
    last = err.rstrip().split("\r")[-1]
    assert "6/6" in last and "loss=" in last, err
    assert "it/s" in last or "s/it" in last, err  # tqdm's rate, either way up
    assert "<00:00" in last, err  # elapsed<remaining


def test_plain_line_without_tqdm(capsys, without_tqdm, images, weights):
    nst.stylize(*images, weights=weights, **{**KWARGS, "scale_sizes": [24, 40]}, progress=True)
    err = capsys.readouterr().err
    assert err.startswith("\r") and err.endswith("\n") and err.count("\n") == 1, repr(err)
    last = err.rstrip().split("\r")[-1]
    # "nst: scale 2/2 12/12 [4521.33 it/s, ETA 0:00] loss 1.2345e+05"
    assert last.startswith("nst: scale 2/2 12/12 [") and " it/s, ETA 0:00] loss " in last, repr(last)
    float(last.rsplit(" ", 1)[1])


def test_progress_must_be_a_bool_or_none(images, weights):
    with pytest.raises(TypeError, match="progress must be True, False or None, got str"):
        nst.stylize(*images, weights=weights, **KWARGS, progress="yes")
