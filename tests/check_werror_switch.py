#!/usr/bin/env python3
"""Fails when a CMake file makes warnings errors outside the NST_WERROR switch.

CI builds with -DNST_WERROR=ON; every other build (a user's, the GPU machine's
fallback build with a newer compiler) must not stop at a warning that its
compiler adds. So every -Werror / --Werror in CMakeLists.txt and cmake/*.cmake
must stand in a generator expression or condition on NST_WERROR, on that line.

    check_werror_switch.py SOURCE_DIR
"""
import pathlib
import sys


def offending_lines(root):
    files = [p for p in root.rglob("CMakeLists.txt") if "build" not in p.relative_to(root).parts[0]]
    files += sorted((root / "cmake").glob("*.cmake"))
    for path in sorted(files):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if "Werror" in code and "NST_WERROR" not in code:
                yield path.relative_to(root), number, line.strip()


def main(argv):
    root = pathlib.Path(argv[1] if len(argv) > 1 else ".").resolve()
    found = list(offending_lines(root))
    for path, number, line in found:
        print(f"{path}:{number}: warnings as errors outside NST_WERROR: {line}")
    if found:
        return 1
    print(f"every -Werror of {root.name}'s CMake files is under NST_WERROR")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
