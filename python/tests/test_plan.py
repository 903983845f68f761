"""nst.plan: the memory plan of a run before it runs, as the CLI's --plan prints it, with
the same keyword arguments as stylize; max_memory in the CLI's byte syntax ("2G").

Run through ctest, or as python/tests/test_nst.py says."""
import os
import subprocess

import numpy as np
import pytest

import nst

SOURCE = os.environ.get("NST_TEST_SOURCE", os.path.join(os.path.dirname(__file__), "..", ".."))
CLI = os.environ.get("NST_TEST_CLI", os.path.join(SOURCE, "build", "apps", "neural-style"))
NARROW = os.path.join(SOURCE, "tests", "reference", "narrow_vgg19.h5")
KWARGS = dict(device="cpu", size=40, iterations=6, init="noise", seed=3, lbfgs_history=5)


@pytest.fixture(scope="module")
def weights():
    return nst.Weights(NARROW)


@pytest.fixture()
def images(tmp_path):
    rng = np.random.default_rng(1)
    content, style = tmp_path / "content.png", tmp_path / "style.png"
    nst.save_image(content, rng.integers(0, 256, size=(32, 40, 3), dtype=np.uint8))
    nst.save_image(style, rng.integers(0, 256, size=(36, 36, 3), dtype=np.uint8))
    return content, style


@pytest.mark.parametrize("cli, kwargs", [
    ([], {}),
    (["--scales", "2", "--tile", "16"], dict(scales=2, tile=16)),
    (["--optimizer", "adam", "--lbfgs-history-precision", "bf16"], dict(optimizer="adam", lbfgs_history_precision="bf16")),
])
def test_the_plan_is_the_clis(tmp_path, images, weights, cli, kwargs):
    content, style = images
    printed = subprocess.run(
        [CLI, "--content", str(content), "--style", str(style), "--weights", NARROW, "--output",
         str(tmp_path / "out.png"), "--plan", "--device", "cpu", "--size", "40", "--lbfgs-history", "5", *cli],
        capture_output=True, text=True, check=True).stdout
    plan = nst.plan(content, style, weights=weights, **KWARGS, **kwargs)
    header, table = printed.split("\n", 1)
    assert plan.table == table
    assert str(plan).startswith("memory plan on cpu (") and str(plan).endswith(table)
    assert header.startswith("memory plan on cpu (")


def test_the_plan_has_every_number_per_scale(images, weights):
    content, style = images
    plan = nst.plan(content, style, weights=weights, **KWARGS, scales=2, tile=16)
    assert isinstance(plan, nst.MemoryPlan) and plan.backend == "cpu" and len(plan.scales) == 2
    assert [(s.width, s.height) for s in plan.scales] == [(20, 16), (40, 32)]
    for scale in plan.scales:
        assert isinstance(scale, nst.ScalePlan) and scale.tile_core == 16 and scale.tiles >= 1
        assert scale.items and all(isinstance(what, str) and bytes_ >= 0 for what, bytes_ in scale.items)
        assert scale.peak_bytes == max(scale.setup_bytes, sum(b for _, b in scale.items))
    assert plan.peak_bytes == max(s.peak_bytes for s in plan.scales)
    assert plan.fits and plan.budget_bytes == plan.available_bytes > 0


def test_the_plan_is_the_runs_peak(images, weights):
    # On the CPU the plan is the measured peak to the byte (DESIGN.md, "The memory plan").
    content, style = images
    planned = nst.plan(content, style, weights=weights, **KWARGS, callback=print, progress=True)
    assert nst.stylize_result(content, style, weights=weights, **KWARGS).peak_bytes == planned.peak_bytes


def test_max_memory_takes_the_clis_sizes(images, weights):
    content, style = images
    gib = nst.plan(content, style, weights=weights, **KWARGS, max_memory="2G")
    assert gib.budget_bytes == min(2 << 30, gib.available_bytes)
    tight = nst.plan(content, style, weights=weights, **KWARGS, max_memory="1.5K")
    assert tight.budget_bytes == 1536 and not tight.fits
    assert nst.plan(content, style, weights=weights, **KWARGS, max_memory=4096).budget_bytes == 4096
    with pytest.raises(ValueError, match=r"^max_memory: '2X' is not a size \(a number of bytes, or with K, M, G or T\)$"):
        nst.plan(content, style, weights=weights, **KWARGS, max_memory="2X")
    with pytest.raises(MemoryError, match=r"are allowed \(max_memory\)"):
        nst.stylize(content, style, weights=weights, **KWARGS, max_memory="1.5K")


def test_tile_auto_plans_with_max_memory(images, weights):
    # tile="auto" is untiled when the plan fits the budget, else tiled (the largest core that
    # fits; on the narrow network tiles save nothing, so the smallest, which stylize refuses).
    content, style = images
    options = {**KWARGS, "size": 128, "tile": "auto"}
    roomy = nst.plan(content, style, weights=weights, **options, max_memory="1G")
    assert roomy.scales[0].tiles == 0 and roomy.fits
    tight = nst.plan(content, style, weights=weights, **options, max_memory=roomy.peak_bytes - 1)
    assert tight.scales[0].tiles > 1 and tight.budget_bytes == roomy.peak_bytes - 1
