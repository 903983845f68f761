"""nst.batch and nst.batch_status: a manifest run by the command line's batch code
(README, "Batches"), with its summary, its records and resume.
Run through ctest, or as python/tests/test_nst.py says."""
import os

import numpy as np
import pytest

import nst

SOURCE = os.environ.get("NST_TEST_SOURCE", os.path.join(os.path.dirname(__file__), "..", ".."))
NARROW = os.path.join(SOURCE, "tests", "reference", "narrow_vgg19.h5")
OPTIONS = dict(weights=NARROW, device="cpu", threads=1, size=32, iterations=3, quiet=True)


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(4)
    for k in range(3):
        nst.save_image(tmp_path / f"photo{k}.png", rng.integers(0, 256, size=(20, 24, 3), dtype=np.uint8))
    nst.save_image(tmp_path / "style.png", rng.integers(0, 256, size=(24, 24, 3), dtype=np.uint8))
    (tmp_path / "broken.png").write_bytes(b"not a PNG")
    rows = ["content,style,output"]
    rows += [f"{tmp_path}/{name},{tmp_path}/style.png,{tmp_path}/out_{k}.png"
             for k, name in enumerate(["photo0.png", "broken.png", "photo2.png"])]
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_a_batch_runs_records_failures_and_resumes(folder):
    summary = nst.batch(folder / "m.csv", **OPTIONS)
    assert isinstance(summary, nst.BatchSummary)
    assert (summary.succeeded, summary.failed, summary.skipped) == (2, 1, 0)
    assert summary.exit_code == 3
    assert [job.status for job in summary.jobs] == ["succeeded", "failed", "succeeded"]
    failed = summary.jobs[1]
    assert failed.where == f"{folder}/m.csv:3" and failed.exit_code == 3 and "broken.png" in failed.message
    assert (folder / "out_0.png").exists() and not (folder / "out_1.png").exists()

    status = nst.batch_status(folder / "m.csv", **OPTIONS)
    assert (status.done, status.failed, status.pending) == (2, 1, 0)
    assert [job.where for job in status.failures] == [f"{folder}/m.csv:3"]

    again = nst.batch(folder / "m.csv", **OPTIONS)
    assert (again.succeeded, again.failed, again.skipped) == (0, 1, 2)
    # A changed option for every job runs them again.
    changed = nst.batch(folder / "m.csv", **dict(OPTIONS, tv_weight=0.5))
    assert (changed.succeeded, changed.failed, changed.skipped) == (2, 1, 0)


def test_shards_and_the_folder_generator(folder, tmp_path):
    contents, styles = tmp_path / "contents", tmp_path / "styles"
    contents.mkdir()
    styles.mkdir()
    for k in (0, 2):
        os.rename(folder / f"photo{k}.png", contents / f"photo{k}.png")
    os.rename(folder / "style.png", styles / "style.png")
    os.rename(folder / "photo1.png", styles / "photo1.png")
    pattern = str(tmp_path / "out" / "{content}_{style}.png")
    # Two contents x two styles, sorted: photo0 x photo1, photo0 x style, photo2 x photo1, photo2 x style.
    first = nst.batch(contents=contents, styles=styles, output_pattern=pattern, shard=(0, 2), **OPTIONS)
    assert [os.path.basename(job.output) for job in first.jobs] == ["photo0_photo1.png", "photo2_photo1.png"]
    second = nst.batch(contents=contents, styles=styles, output_pattern=pattern, shard="1/2", **OPTIONS)
    assert [os.path.basename(job.output) for job in second.jobs] == ["photo0_style.png", "photo2_style.png"]
    assert first.succeeded == second.succeeded == 2
    status = nst.batch_status(contents=contents, styles=styles, output_pattern=pattern, **OPTIONS)
    assert (status.done, status.failed, status.pending) == (4, 0, 0)
    assert (tmp_path / "out" / ".nst-batch").is_dir()  # the records beside the outputs


def test_a_bad_manifest_raises_naming_its_lines_and_runs_nothing(folder):
    (folder / "bad.csv").write_text(f"content,style,output,size\n{folder}/photo0.png,{folder}/style.png,"
                                    f"{folder}/a.png,big\n{folder}/nope.png,{folder}/style.png,{folder}/b.png,32\n")
    with pytest.raises(ValueError) as error:
        nst.batch(folder / "bad.csv", **OPTIONS)
    assert "bad.csv:2:" in str(error.value) and "bad.csv:3:" in str(error.value)
    assert not (folder / "bad.csv.nst-batch").exists() and not (folder / "a.png").exists()
