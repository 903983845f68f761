"""nst.stylize_video: frames as they are finished, a video written at the end, and a
run closed early that a second call resumes to the same frames.

Run through ctest, or as python/tests/test_nst.py says."""
import os
import shutil
import subprocess

import numpy as np
import pytest

import nst

SOURCE = os.environ.get("NST_TEST_SOURCE", os.path.join(os.path.dirname(__file__), "..", ".."))
NARROW = os.path.join(SOURCE, "tests", "reference", "narrow_vgg19.h5")
KWARGS = dict(device="cpu", size=48, iterations=6, frame_iterations=4, threads=1)


@pytest.fixture(scope="module")
def weights():
    return nst.Weights(NARROW)


@pytest.fixture()
def clip(tmp_path):
    """Five frames of a textured image moving right by 2 px a frame, as a PNG pattern."""
    rng = np.random.default_rng(2)
    scene = rng.integers(0, 256, size=(36, 70, 3), dtype=np.uint8)
    folder = tmp_path / "frames"
    folder.mkdir()
    for k in range(5):
        nst.save_image(str(folder / f"{k:03d}.png"), scene[:, 2 * k:2 * k + 48])
    return str(folder / "%03d.png")


def test_frames_come_in_order_at_the_frame_size(clip, weights):
    style = np.full((40, 40, 3), 0.5, dtype=np.float32)
    frames = list(nst.stylize_video(clip, style, weights=weights, **KWARGS))
    assert [index for index, _ in frames] == [0, 1, 2, 3, 4]
    for _, frame in frames:
        assert frame.shape == (36, 48, 3) and frame.dtype == np.float32
        assert 0 <= frame.min() and frame.max() <= 1


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="needs ffprobe to check the output")
def test_a_video_output_is_written_at_the_end(clip, weights, tmp_path):
    style = np.full((40, 40, 3), 0.5, dtype=np.float32)
    out = str(tmp_path / "out.mp4")
    count = sum(1 for _ in nst.stylize_video(clip, style, out, weights=weights, **KWARGS))
    assert count == 5
    probe = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-show_entries",
                            "stream=codec_name,width,height,nb_read_packets", "-of", "csv=p=0", out],
                           capture_output=True, text=True, check=True).stdout
    assert probe.strip() == "h264,48,36,5"
    assert not os.path.exists(out + ".nst-work")


def test_a_run_closed_early_resumes_to_the_same_frames(clip, weights, tmp_path):
    rng = np.random.default_rng(3)
    style = rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)
    whole = [frame for _, frame in nst.stylize_video(clip, style, weights=weights, **KWARGS)]
    work = str(tmp_path / "work")
    run = nst.stylize_video(clip, style, work_folder=work, weights=weights, **KWARGS)
    first = [next(run), next(run)]
    run.close()  # stopped after two frames: both stay in the work folder
    resumed = list(nst.stylize_video(clip, style, work_folder=work, weights=weights, **KWARGS))
    assert [index for index, _ in resumed] == [0, 1, 2, 3, 4]
    for k, (_, frame) in enumerate(resumed):
        assert np.array_equal(frame, whole[k]), f"frame {k}"
    assert np.array_equal(first[1][1], whole[1])


def test_bad_arguments_are_refused(clip, weights):
    with pytest.raises(TypeError, match="path of a video"):
        nst.stylize_video(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)), weights=weights)
    with pytest.raises(TypeError, match="reports per frame"):
        nst.stylize_video(clip, np.zeros((8, 8, 3)), weights=weights, callback=print)
    with pytest.raises(ValueError, match="frames: '5:2' selects no frame"):
        nst.stylize_video(clip, np.zeros((8, 8, 3)), weights=weights, frames="5:2")
    with pytest.raises(nst.InputError):
        nst.stylize_video(os.path.join(os.path.dirname(clip), "missing_%d.png"), np.zeros((8, 8, 3)),
                          weights=weights)
