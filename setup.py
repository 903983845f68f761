"""Builds the extension module `nst` with the project's CMake (python/CMakeLists.txt).

    pip install --no-build-isolation .

Environment: NST_BUILD_DIR names the CMake build folder (default: build-python);
one already configured is reused as it is, and only the module is built there.
NST_CMAKE_ARGS adds CMake arguments when configuring (e.g. "-DNST_CUDA=OFF").
A new folder is configured for the interpreter running pip.
"""
import os
import shlex
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build = os.path.abspath(os.environ.get("NST_BUILD_DIR", os.path.join(ROOT, "build-python")))
        configure = ["cmake", "-S", ROOT, "-B", build, "-G", "Ninja",
                     "-DCMAKE_BUILD_TYPE=Release", "-DNST_PYTHON=ON",
                     f"-DPython_EXECUTABLE={sys.executable}"]
        configure += shlex.split(os.environ.get("NST_CMAKE_ARGS", ""))
        env = dict(os.environ, PATH=os.environ.get("PATH", "") + ":/usr/local/cuda/bin")
        # A configured build folder is reused as it is (its interpreter and options kept).
        if not os.path.exists(os.path.join(build, "CMakeCache.txt")):
            subprocess.run(configure, check=True, env=env)
        subprocess.run(["cmake", "--build", build, "--target", "nst_python"], check=True, env=env)
        built = [f for f in os.listdir(os.path.join(build, "python"))
                 if f.startswith("nst") and f.endswith(".so")]
        if len(built) != 1:
            raise RuntimeError(f"expected one nst*.so in {build}/python, found {built}")
        target = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(os.path.join(build, "python", built[0]), target)


# Only the extension module: no Python packages from the tree. setuptools' own
# files go under build-python/ (git-ignored), never into the CMake build folder.
SETUPTOOLS_DIR = os.path.join(ROOT, "build-python", "setuptools")
os.makedirs(SETUPTOOLS_DIR, exist_ok=True)
setup(packages=[], py_modules=[], ext_modules=[Extension("nst", sources=[])],
      cmdclass={"build_ext": CMakeBuild},
      options={"build": {"build_base": SETUPTOOLS_DIR}, "egg_info": {"egg_base": SETUPTOOLS_DIR}})
