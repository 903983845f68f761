"""Errors that speak Python: messages name keyword arguments, not the CLI's flags; a
misspelt keyword gets a suggestion; wrong types are TypeErrors saying what is wanted;
a failed save is an OSError of the right kind.

Run through ctest, or as python/tests/test_nst.py says."""
import errno
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


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(1)
    return (rng.integers(0, 256, size=(32, 40, 3), dtype=np.uint8),
            rng.integers(0, 256, size=(36, 36, 3), dtype=np.uint8))


# ---- messages ------------------------------------------------------------------------------------

@pytest.mark.parametrize("engine, python", [
    ("no VGG-19 weights: pass --weights FILE, set NST_WEIGHTS, or create ~/.cache/nst/vgg19.h5",
     "no VGG-19 weights: pass weights=PATH (or an nst.Weights), set NST_WEIGHTS, or create ~/.cache/nst/vgg19.h5"),
    ("... are allowed (--max-memory); try --tile 512 (or --tile auto) (the table: neural-style --plan)",
     "... are allowed (max_memory); try tile=512 (or tile='auto') (the table: nst.plan())"),
    ("try --lbfgs-history-precision bf16", "try lbfgs_history_precision='bf16'"),
    ("more memory: even --size 16 with --lbfgs-history 1 needs 3 MiB",
     "more memory: even size=16 with lbfgs_history=1 needs 3 MiB"),
    ("--scale-sizes ends at 64 but --size is 512", "scale_sizes ends at 64 but size is 512"),
    ("--style-masks has 1 masks for 2 --style images", "style_masks has 1 masks for 2 style images"),
    ("--device cuda:3: 1 CUDA device(s) present", "device='cuda:3': 1 CUDA device(s) present"),
    ("--precision tf32 needs the CUDA backend", "precision='tf32' needs the CUDA backend"),
    ("cannot read '--odd-name.png'", "cannot read '--odd-name.png'"),  # not an option: left alone
])
def test_engine_messages_name_keyword_arguments(engine, python):
    assert nst._nst._python_message(engine) == python


def test_missing_weights_name_the_keyword(monkeypatch, tmp_path, images):
    monkeypatch.delenv("NST_WEIGHTS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(nst.InputError, match=r"pass weights=PATH \(or an nst.Weights\)") as error:
        nst.stylize(*images, **KWARGS)
    assert "--" not in str(error.value)


def test_out_of_memory_advice_names_keywords(images, weights):
    with pytest.raises(MemoryError) as error:
        nst.stylize(*images, weights=weights, **KWARGS, max_memory="64K")
    message = str(error.value)
    assert "(max_memory)" in message and "nst.plan()" in message and "--" not in message, message


# ---- type errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("function", ["stylize", "stylize_result", "plan"])
def test_a_misspelt_keyword_gets_a_suggestion(images, weights, function):
    with pytest.raises(TypeError) as error:
        getattr(nst, function)(*images, weights=weights, stlye_weight=1e4)
    assert str(error.value) == (f"{function}() got an unexpected keyword argument 'stlye_weight'; "
                                "did you mean 'style_weight'?")
    with pytest.raises(TypeError, match=rf"'zzz'; help\(nst.{function}\) lists them$"):
        getattr(nst, function)(*images, weights=weights, zzz=1)


def test_a_callback_answer_must_be_none_or_a_bool(images, weights):
    with pytest.raises(TypeError, match=r"^callback must return None, True or False \(False stops the run\), "
                                        r"got str: 'stop'$"):
        nst.stylize(*images, weights=weights, **KWARGS, callback=lambda report: "stop")
    for fine in (None, True, np.bool_(True)):
        nst.stylize(*images, weights=weights, **KWARGS, callback=lambda report: fine)
    with pytest.raises(TypeError, match="^callback must be callable or None, got int$"):
        nst.stylize(*images, weights=weights, **KWARGS, callback=3)


def test_weights_of_the_wrong_type(images):
    for bad, name in ((42, "int"), (3.5, "float"), ([NARROW], "list")):
        with pytest.raises(TypeError, match=f"^weights must be an nst.Weights, a path or None, got {name}$"):
            nst.stylize(*images, weights=bad, **KWARGS)


def test_saving_into_a_missing_folder_is_file_not_found(tmp_path, images):
    path = tmp_path / "missing" / "out.png"
    with pytest.raises(FileNotFoundError) as error:
        nst.save_image(path, images[0])
    assert error.value.errno == errno.ENOENT and error.value.filename == str(path)
    folder = tmp_path / "folder.png"
    folder.mkdir()
    with pytest.raises(IsADirectoryError):
        nst.save_image(folder, images[0])
    with pytest.raises(ValueError, match="unsupported image format"):
        nst.save_image(tmp_path / "out.bmp", images[0])
    assert sorted(os.listdir(tmp_path)) == ["folder.png"]  # nothing partial left
