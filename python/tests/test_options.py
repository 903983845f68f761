"""Every run option is declared once (engine/run/run_options.h): the README's option table,
`neural-style --help` and help(nst.stylize) must list the same options with the same
defaults as that list, which nst.run_options() returns. A default changed in one place
only, or an option missing from one front end, fails here."""
import inspect
import os
import re
import subprocess

import numpy as np
import pytest

import nst

SOURCE = os.environ.get("NST_TEST_SOURCE", os.path.join(os.path.dirname(__file__), "..", ".."))
CLI = os.environ.get("NST_TEST_CLI", os.path.join(SOURCE, "build", "apps", "neural-style"))

# The CLI's options that are not run options (NST_FRONT_END_OPTIONS), with their defaults
# as shown; Python's own keyword arguments of that list.
FRONT_END_CLI = {"content": "required", "style": "required", "output": "required",
                 "output-depth": "8", "jpeg-quality": "95",
                 "weights": "$NST_WEIGHTS, then ~/.cache/nst/vgg19.h5", "init": "content",
                 "scales": "1", "style-masks": "", "style-image-masks": "whole images",
                 "content-mask": "", "save-every": "0", "log-json": "", "quiet": "", "plan": "",
                 "partial-output": ""}
FRONT_END_PYTHON = ["weights", "init", "scales", "style_masks", "style_image_masks",
                    "content_mask", "callback", "progress"]


def readme_table():
    """{flag: default cell} of the README's option table (backticks dropped)."""
    rows, inside = {}, False
    with open(os.path.join(SOURCE, "README.md"), encoding="utf-8") as readme:
        for line in readme:
            if line.startswith("| option | default | meaning |"):
                inside = True
                continue
            if inside and not line.startswith("|"):
                break
            match = re.match(r"^\| `--([a-z0-9-]+)[^|]*\| ([^|]*)\|", line.replace("\\|", "/"))
            if inside and match and match.group(1) != "help":
                rows[match.group(1)] = match.group(2).replace("`", "").strip()
    assert rows, "README.md has no option table"
    return rows


def cli_help():
    """{flag: shown default} of neural-style --help ('' where none is shown)."""
    text = subprocess.run([CLI, "--help"], capture_output=True, text=True, check=True).stdout
    for _, _, _, helptext in nst.run_options():  # a help text may follow a long default after one space
        text = text.replace(" " + helptext, "")
    shown = {}
    for line in text.splitlines():
        match = re.match(r"^\s+--([a-z0-9-]+)(.*?)(?:\s{2,}|$)", line)
        if match and match.group(1) not in ("help", "version"):
            left = match.group(2)
            default = left.split("=", 1)[1] if "=" in left else ""
            shown[match.group(1)] = "required" if "REQUIRED" in left else default.strip()
    return shown


def test_the_list_is_not_empty_and_names_are_unique():
    options = nst.run_options()
    assert len(options) >= 25
    flags = [flag for flag, _, _, _ in options]
    assert len(set(flags)) == len(flags)
    for flag, keyword, _, helptext in options:
        assert keyword == flag.replace("-", "_") and helptext


def test_the_readme_table_lists_every_option_with_its_default():
    table = readme_table()
    expected = {flag: default for flag, _, default, _ in nst.run_options()}
    expected.update(FRONT_END_CLI)
    missing = sorted(set(expected) - set(table))
    unknown = sorted(set(table) - set(expected))
    assert not missing, f"options missing from README.md's table: {missing}"
    assert not unknown, f"README.md's table lists options that do not exist: {unknown}"
    wrong = {flag: (table[flag], default) for flag, default in expected.items() if table[flag] != default}
    assert not wrong, f"README default differs from the declared one (README, declared): {wrong}"


def test_neural_style_help_lists_every_option_with_its_default():
    shown = cli_help()
    expected = {flag: default for flag, _, default, _ in nst.run_options()}
    expected.update(FRONT_END_CLI)
    assert set(shown) == set(expected), (sorted(set(expected) - set(shown)), sorted(set(shown) - set(expected)))
    wrong = {flag: (shown[flag], default) for flag, default in expected.items() if shown[flag] != default}
    assert not wrong, f"--help default differs from the declared one (--help, declared): {wrong}"


def test_help_of_stylize_lists_every_option_with_its_default():
    doc = nst.stylize.__doc__
    for flag, keyword, default, _ in nst.run_options():
        line = re.search(rf"^{keyword}: [^=\n]+ = (.*)$", doc, re.MULTILINE)
        assert line, f"help(nst.stylize) does not list {keyword}"
        python_default = line.group(1).strip().strip("'")
        if python_default == "None":  # a default that depends on other options: said in words
            assert default == "" or f"(default: {default})" in doc, keyword
        elif python_default in ("True", "False"):
            assert default == "", keyword
        else:
            assert python_default == default, (keyword, python_default, default)
    # The signature (the docstring's first line, which Python moves to __text_signature__).
    parameters = inspect.signature(nst.stylize).parameters
    assert list(parameters)[:2] == ["content", "style"]
    assert parameters["size"].default == 512 and parameters["pool"].default == "avg"
    assert set(parameters) == {"content", "style", *FRONT_END_PYTHON, *(k for _, k, _, _ in nst.run_options())}


NARROW = os.path.join(SOURCE, "tests", "reference", "narrow_vgg19.h5")


@pytest.mark.parametrize("keyword, value", [("size", 48), ("style_weight", 1e-3 + 1e5), ("tv_weight", 0.1),
                                            ("content_layers", ["conv1_1", "conv2_2"]), ("pool", "max"),
                                            ("tile", "auto"), ("max_memory", "2G"), ("mask_erosion", False),
                                            ("scale_sizes", [24, 48]), ("style_blend_weights", (1,))])
def test_keywords_take_the_values_the_cli_takes(keyword, value):
    image = np.full((40, 32, 3), 128, np.uint8)
    common = dict(weights=NARROW, device="cpu", size=48, iterations=0)
    common[keyword] = value
    out = nst.stylize(image, image, **common)  # accepted: zero iterations return the start
    assert out.shape[2] == 3
    # Unknown keywords and wrong types are TypeErrors, before any image is read.
    with pytest.raises(TypeError, match="unexpected keyword argument 'sizes'"):
        nst.stylize("missing.png", "missing.png", sizes=48)
    with pytest.raises(TypeError, match=f"{keyword} must be"):
        nst.stylize("missing.png", "missing.png", **{keyword: object()})
