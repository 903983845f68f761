#!/usr/bin/env python3
"""Fails when the source cites a part of docs/DESIGN.md that is not there.

Comments and docs point at the design of record in these forms:

    (DESIGN.md, "The objective")        a section: a `## ` or `### ` heading
    of DESIGN.md ("The objective")      the same
    tier 5 of docs/DESIGN.md            a test tier: a `### Tier 5 …` heading
    tiers 5 and 6 of DESIGN.md          inside the "Tests" section
    Tier 3 (DESIGN.md, "Tests")         both
    (DESIGN.md), docs/DESIGN.md         the document as a whole

A quoted section may wrap onto the next comment line. Any other path ending in
DESIGN.md (one that does not lead to docs/DESIGN.md) is refused too: the
design the source cites is the project's own.

    check_design_citations.py SOURCE_DIR [--design FILE] [--verbose]

Scans *.cpp, *.h, *.cu, *.cuh, *.py, *.sh, *.md, CMakeLists.txt and *.cmake
under SOURCE_DIR, skipping build*/ and hidden folders, docs/DESIGN.md and this
script. --design checks the citations against another file (default
SOURCE_DIR/docs/DESIGN.md). Prints `path:line: what is wrong` for each bad
citation and exits 1; otherwise prints how many citations it checked, exit 0.
"""
import argparse
import os
import pathlib
import re
import sys

SUFFIXES = {".cpp", ".h", ".cu", ".cuh", ".py", ".sh", ".md", ".cmake"}
NAMES = {"CMakeLists.txt"}

QUOTES = "\"\u201c\u201d"
# A path ending in DESIGN.md (the path part may be empty).
MENTION = re.compile(r"([\w./-]*?)DESIGN\.md")
# What may follow a mention to name a section: `, "X"` or ` ("X"`.
SECTION_START = re.compile(r"\s*(?:,|\()\s*[" + QUOTES + r"]")
SECTION_REST = re.compile(r"([^" + QUOTES + r"]*)[" + QUOTES + r"]")
# What may precede a mention to name tiers: `tier N of ` or `Tier N (`.
NUMBERS = r"\d+(?:\s*(?:,|and|&|to|-|\u2013)\s*\d+)*"
TIERS_BEFORE = re.compile(r"\btiers?\s+(" + NUMBERS + r")\s*(?:of\s+(?:the\s+)?|\(\s*)$",
                          re.IGNORECASE)
# Comment leaders stripped from a continuation line.
CONTINUATION = re.compile(r"^\s*(?:#+|//+|/?\*+|--)?\s*")
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{2,4})\s+(.*?)\s*#*\s*$")
TIER_HEADING = re.compile(r"^tier\s+(\d+)\b", re.IGNORECASE)


def tier_numbers(text):
    """'5 and 6' -> [5, 6]; '2, 3 and 5' -> [2, 3, 5]; '4-6' -> [4, 5, 6]."""
    numbers = []
    for match in re.finditer(r"(\d+)(?:\s*(?:to|-|\u2013)\s*(\d+))?", text):
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) else first
        numbers.extend(range(first, max(first, last) + 1))
    return numbers


def read_design(path):
    """Headings (## to ####) outside code fences, and the tiers of "Tests"."""
    headings, tiers = set(), set()
    in_fence, in_tests = False, False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        match = HEADING.match(line)
        if not match:
            continue
        level, text = len(match.group(1)), match.group(2)
        if level <= 3:
            headings.add(text)
        if level == 2:
            in_tests = text == "Tests"
        elif in_tests:
            tier = TIER_HEADING.match(text)
            if tier:
                tiers.add(int(tier.group(1)))
    return headings, tiers


def source_files(root, skip):
    for directory, folders, files in os.walk(root):
        folders[:] = sorted(f for f in folders if not f.startswith((".", "build")))
        for name in sorted(files):
            path = pathlib.Path(directory, name)
            if name not in NAMES and path.suffix not in SUFFIXES:
                continue
            if path.resolve() in skip:
                continue
            yield path


def leads_to_design(prefix, path, root, design):
    """Whether `prefix + DESIGN.md` names the design, from the file or the root."""
    if prefix in ("", "./"):
        return True  # the bare name: the project has one design document
    name = prefix + "DESIGN.md"
    candidates = [path.parent / name, root / name]
    return any(c.resolve() == design.resolve() for c in candidates)


def citations(path):
    """(line number, prefix, section or None, error or None, tiers) per mention."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for index, line in enumerate(lines):
        for mention in MENTION.finditer(line):
            prefix = mention.group(1)
            section, error = None, None
            rest = line[mention.end():]
            start = SECTION_START.match(rest)
            if start:
                tail = rest[start.end():]
                end = SECTION_REST.match(tail)
                if not end and index + 1 < len(lines):
                    following = CONTINUATION.sub("", lines[index + 1], count=1)
                    tail = tail.rstrip().rstrip("\\").rstrip() + " " + following
                    end = SECTION_REST.match(tail)
                if end:
                    section = " ".join(end.group(1).split())
                else:
                    error = "a quoted section of DESIGN.md that does not close"
            before = TIERS_BEFORE.search(line[:mention.start()])
            tiers = tier_numbers(before.group(1)) if before else []
            yield index + 1, prefix, section, error, tiers


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source_dir", type=pathlib.Path)
    parser.add_argument("--design", type=pathlib.Path,
                        help="the design to check against (default SOURCE_DIR/docs/DESIGN.md)")
    parser.add_argument("--verbose", action="store_true", help="list every citation")
    args = parser.parse_args()

    root = args.source_dir.resolve()
    if not root.is_dir():
        print(f"{args.source_dir}: not a directory", file=sys.stderr)
        return 2
    document = (root / "docs" / "DESIGN.md").resolve()
    design = args.design.resolve() if args.design else document
    skip = {document, pathlib.Path(__file__).resolve()}

    found = []
    for path in source_files(root, skip):
        for number, prefix, section, error, tiers in citations(path):
            found.append((path.relative_to(root), number, prefix, section, error, tiers))

    if not design.is_file():
        print(f"{design}: missing, and the source cites it {len(found)} time(s)")
        for where, number, *_ in found[:5]:
            print(f"{where}:{number}: cites DESIGN.md")
        return 1

    headings, tiers_described = read_design(design)
    bad = 0
    sections, tier_references = 0, 0
    for where, number, prefix, section, error, tiers in found:
        problems = []
        if not leads_to_design(prefix, root / where, root, document):
            problems.append(f"cites '{prefix}DESIGN.md', not the project's docs/DESIGN.md")
        if error:
            problems.append(error)
        if section is not None:
            sections += 1
            if section not in headings:
                problems.append(f'cites DESIGN.md, "{section}", which is no ## or ### heading of '
                                f"{design.name}")
        for tier in tiers:
            tier_references += 1
            if tier not in tiers_described:
                problems.append(f'cites tier {tier} of DESIGN.md, which its "Tests" section does '
                                f"not describe (no '### Tier {tier}' heading)")
        for problem in problems:
            print(f"{where}:{number}: {problem}")
        bad += bool(problems)
        if args.verbose and not problems:
            what = f'"{section}"' if section is not None else "the document"
            if tiers:
                what += ", tier " + ", ".join(map(str, tiers))
            print(f"{where}:{number}: ok: {what}")

    if bad:
        print(f"{bad} of {len(found)} citations of DESIGN.md are wrong "
              f"(checked against {design})")
        return 1
    files = len({where for where, *_ in found})
    print(f"checked {len(found)} citations of DESIGN.md in {files} files "
          f"({sections} of a section, {tier_references} of a test tier) against {design}: all found")
    return 0


if __name__ == "__main__":
    sys.exit(main())
