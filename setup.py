"""Builds the Python package `nst` (python/nst/ and its extension nst._nst) with the
project's CMake (python/CMakeLists.txt).

    pip install --no-build-isolation .                    # offline; --target DIR works too
    NST_BUILD_DIR=build pip install --no-build-isolation .

Environment: NST_BUILD_DIR names a CMake build folder to build in and keep; one already
configured is reused as it is, and only the module is built there. Without it the module is
built in a temporary folder, removed afterwards. NST_CMAKE_ARGS adds CMake arguments when
configuring (e.g. "-DNST_CUDA=OFF"); a new folder is configured for the interpreter running
pip. Nothing is written into the source tree: setuptools' build and egg-info folders are
temporary as well.

The version is the project's (CMakeLists.txt). numpy is declared a requirement only where it
cannot be imported already: with Debian's python3-numpy, `pip install --target DIR .` (which
ignores what is installed) would otherwise try to download it.
"""
import atexit
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))


def project_version():
    with open(os.path.join(ROOT, "CMakeLists.txt"), encoding="utf-8") as cmake:
        return re.search(r"project\(nst VERSION ([0-9.]+)", cmake.read()).group(1)


def temporary_folder(prefix):
    folder = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        given = os.environ.get("NST_BUILD_DIR")
        build = os.path.abspath(given) if given else temporary_folder("nst-cmake-")
        configure = ["cmake", "-S", ROOT, "-B", build, "-G", "Ninja",
                     "-DCMAKE_BUILD_TYPE=Release", "-DNST_PYTHON=ON",
                     f"-DPython_EXECUTABLE={sys.executable}"]
        configure += shlex.split(os.environ.get("NST_CMAKE_ARGS", ""))
        env = dict(os.environ, PATH=os.environ.get("PATH", "") + ":/usr/local/cuda/bin")
        # A configured build folder is reused as it is (its interpreter and options kept).
        if not os.path.exists(os.path.join(build, "CMakeCache.txt")):
            subprocess.run(configure, check=True, env=env)
        subprocess.run(["cmake", "--build", build, "--target", "nst_python"], check=True, env=env)
        package = os.path.join(build, "python", "nst")
        built = [f for f in os.listdir(package) if f.startswith("_nst") and f.endswith(".so")]
        if len(built) != 1:
            raise RuntimeError(f"expected one _nst*.so in {package}, found {built}")
        target = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(os.path.join(package, built[0]), target)


# setuptools' own files (build/, *.egg-info) go to a temporary folder, never into the tree.
SETUPTOOLS_DIR = temporary_folder("nst-setuptools-")
setup(version=project_version(),
      install_requires=[] if importlib.util.find_spec("numpy") else ["numpy"],
      packages=["nst"], package_dir={"nst": "python/nst"}, package_data={"nst": ["py.typed", "*.pyi"]},
      ext_modules=[Extension("nst._nst", sources=[])],
      cmdclass={"build_ext": CMakeBuild},
      options={"build": {"build_base": SETUPTOOLS_DIR}, "egg_info": {"egg_base": SETUPTOOLS_DIR}})
