"""The type stubs (python/nst/__init__.pyi, with py.typed) against the package: they are
written by hand, so this holds them to it: every public name, every class's attributes,
and the parameters and defaults of the run functions (which come from the option list
of engine/run/run_options.h). mypy checks a small program against them when it is
installed (Debian's python3-mypy; not a dependency).

Run through ctest, or as python/tests/test_nst.py says."""
import ast
import importlib.util
import inspect
import os
import subprocess
import sys

import pytest

import nst

PACKAGE = os.path.dirname(nst.__file__)
STUB = os.path.join(PACKAGE, "__init__.pyi")


@pytest.fixture(scope="module")
def stub():
    with open(STUB, encoding="utf-8") as source:
        return ast.parse(source.read(), STUB)


def top_level(stub):
    names = {}
    for node in stub.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names[node.name] = node
        elif isinstance(node, ast.AnnAssign):
            names[node.target.id] = node
        elif isinstance(node, ast.Assign):
            names[node.targets[0].id] = node
    return names


def test_the_stubs_and_py_typed_are_shipped_with_the_package():
    assert os.path.isfile(os.path.join(PACKAGE, "py.typed"))
    assert os.path.isfile(STUB)


def test_every_public_name_is_in_the_stubs(stub):
    missing = set(nst.__all__) - set(top_level(stub))
    assert not missing, f"__init__.pyi lacks {sorted(missing)}"


@pytest.mark.parametrize("name", ["Weights", "Report", "Result", "ScalePlan", "MemoryPlan", "BatchJob", "BatchSummary",
                                  "BatchStatus"])
def test_each_class_has_its_attributes_in_the_stubs(stub, name):
    node = top_level(stub)[name]
    in_stub = {item.name for item in node.body if isinstance(item, ast.FunctionDef)} - {"__init__", "__array__"}
    public = {attribute for attribute in dir(getattr(nst, name)) if not attribute.startswith("_")}
    assert in_stub == public, (sorted(public - in_stub), sorted(in_stub - public))


@pytest.mark.parametrize("name", ["stylize", "stylize_result", "plan"])
def test_run_functions_have_the_packages_parameters_and_defaults(stub, name):
    node = top_level(stub)[name]
    arguments = node.args
    in_stub = [(a.arg, "positional") for a in arguments.args]
    in_stub += [(a.arg, ast.literal_eval(d)) for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults)]
    signature = inspect.signature(getattr(nst, name))
    expected = [(p.name, "positional" if p.default is inspect.Parameter.empty else p.default)
                for p in signature.parameters.values()]
    assert in_stub == expected


def test_mypy_accepts_a_program_against_the_stubs(tmp_path):
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed")
    program = tmp_path / "use_nst.py"
    program.write_text(
        "import numpy as np\nimport nst\n"
        "result: nst.Result = nst.stylize_result('a.png', ['b.png'], size=64, max_memory='2G')\n"
        "image: np.ndarray = nst.stylize(np.zeros((4, 4, 3), np.uint8), 'b.png', callback=lambda r: r.loss > 1)\n"
        "plan: nst.MemoryPlan = nst.plan('a.png', 'b.png', tile='auto')\n"
        "print(plan.scales[0].items, result.content_loss, nst.__version__)\n")
    env = dict(os.environ, MYPYPATH=os.path.dirname(PACKAGE))
    checked = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", os.devnull,
                              str(program)], capture_output=True, text=True, env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
