#!/usr/bin/env python3
"""make test: the module table of docs/architecture.md says what Package.swift says.

    scripts/check-architecture.py [--doc FILE] [--package FILE]

Package.swift: every `.target(`, `.executableTarget(` and `.systemLibrary(` entry, with its name and its project
dependencies: the quoted names in `dependencies: [...]` (also `.target(name: "X")` and `.byName(name: "X")`),
`.product(...)` entries left out. Test targets are not checked; a `.target` whose `path:` is under Tests/ (TestSupport)
is optional: checked when the document has a row for it.

The document: the section headed `## Modules`, up to the next heading, and its Markdown table. The first column is the
target name in backticks; the third, headed `may import`, lists the project targets it may import, each in backticks,
separated by commas, or `—` for none.

One check per target: the target has a row (a non-optional target without one fails), the row names a target that
exists, and the row's `may import` set equals the dependencies in Package.swift. Prints `ok    NAME` or
`FAIL  NAME: ...` for each, then `architecture: N targets match Package.swift` when all match, and last
`N passed, N failed, 0 skipped`. Exit 1 when a check failed or a file cannot be read or parsed.
"""
import argparse
import os
import re
import sys

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADING = "Modules"
KINDS = ("target", "executableTarget", "systemLibrary")
NONE_MARKS = {"", "—", "–", "-"}


class Problem(Exception):
    pass


def strip_comments(text):
    """Swift source without // and /* */ comments; string literals (with their escapes) kept as they are."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def closing(text, start, open_char, close_char):
    """Index of the bracket closing the one at `start`, skipping string literals."""
    depth, i = 0, start
    while i < len(text):
        c = text[i]
        if c == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif c == open_char:
            depth += 1
        elif c == close_char:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise Problem(f"unbalanced '{open_char}' at offset {start}")


def without_calls(text, call):
    """`text` with every `.call(...)` removed."""
    while (match := re.search(r"\." + call + r"\s*\(", text)):
        end = closing(text, match.end() - 1, "(", ")")
        text = text[:match.start()] + text[end + 1:]
    return text


def package_targets(path):
    """{name: (set of project dependencies, optional)} from Package.swift."""
    with open(path, encoding="utf-8") as f:
        source = strip_comments(f.read())
    targets = {}
    entry = re.compile(r"\.(" + "|".join(KINDS + ("testTarget", "binaryTarget", "plugin", "macro")) + r")\s*\(")
    position = 0
    while (match := entry.search(source, position)):
        end = closing(source, match.end() - 1, "(", ")")
        body = source[match.end():end]
        position = end + 1  # a .target(name:) among an entry's dependencies is not an entry
        if match.group(1) not in KINDS:
            continue
        name = re.search(r'\bname:\s*"([^"]+)"', body)
        if not name:
            raise Problem(f"{path}: a .{match.group(1)}( entry without a name")
        dependencies = set()
        listed = re.search(r"\bdependencies:\s*\[", body)
        if listed:
            items = body[listed.end() - 1:closing(body, listed.end() - 1, "[", "]") + 1]
            items = without_calls(items, "product")
            dependencies = set(re.findall(r'"([^"]+)"', items))
        where = re.search(r'\bpath:\s*"([^"]+)"', body)
        optional = bool(where and where.group(1).startswith("Tests/"))
        targets[name.group(1)] = (dependencies, optional)
    if not targets:
        raise Problem(f"{path}: no .target, .executableTarget or .systemLibrary entries")
    return targets


def cells(line):
    """The cells of a Markdown table row (`\\|` is a pipe inside a cell)."""
    row = line.strip()[1:]
    if row.endswith("|") and not row.endswith("\\|"):
        row = row[:-1]
    return [part.strip() for part in re.split(r"(?<!\\)\|", row)]


def documented_targets(path):
    """{name: set of may-import targets} from the `## Modules` table of the document."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    start = next((i for i, line in enumerate(lines) if re.fullmatch(r"##\s+" + HEADING + r"\s*#*", line.strip())), None)
    if start is None:
        raise Problem(f"{path} has no heading '## {HEADING}'")
    rows, fenced = [], False
    for line in lines[start + 1:]:
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            break
        elif not fenced and line.strip().startswith("|"):
            rows.append(cells(line))
    if len(rows) < 2:
        raise Problem(f"{path}: the section '## {HEADING}' has no table")
    header, separator, body = rows[0], rows[1], rows[2:]
    if not all(re.fullmatch(r":?-+:?", cell) for cell in separator if cell):
        raise Problem(f"{path}: the table under '## {HEADING}' has no |---| row after its header")
    if len(header) < 3 or header[2].lower() != "may import":
        raise Problem(f"{path}: the third column of the table under '## {HEADING}' must be headed 'may import', "
                      f"not {header[2] if len(header) > 2 else 'missing'!r}")
    documented = {}
    for row in body:
        if len(row) < 3:
            raise Problem(f"{path}: a row of '## {HEADING}' has fewer than 3 columns: {' | '.join(row)}")
        name = re.fullmatch(r"`([^`]+)`", row[0])
        if not name:
            raise Problem(f"{path}: the first column must be one target name in backticks, not {row[0]!r}")
        imports = row[2]
        names = re.findall(r"`([^`]+)`", imports)
        rest = re.sub(r"`[^`]+`", "", imports)
        if names and rest.replace(",", "").strip() or not names and rest.strip() not in NONE_MARKS:
            raise Problem(f"{path}: 'may import' of {name.group(1)} must be names in backticks separated by commas, "
                          f"or — for none, not {imports!r}")
        if name.group(1) in documented:
            raise Problem(f"{path}: {name.group(1)} has two rows under '## {HEADING}'")
        documented[name.group(1)] = set(names)
    return documented


def shown(path):
    path = os.path.abspath(path)
    return os.path.relpath(path, PROJECT) if path.startswith(PROJECT + os.sep) else path


def listed(names):
    return ", ".join(sorted(names)) or "nothing"


def main():
    parser = argparse.ArgumentParser(description="Check docs/architecture.md's module table against Package.swift.")
    parser.add_argument("--doc", default=os.path.join(PROJECT, "docs", "architecture.md"))
    parser.add_argument("--package", default=os.path.join(PROJECT, "Package.swift"))
    opts = parser.parse_args()
    doc, package = shown(opts.doc), shown(opts.package)
    try:
        targets = package_targets(opts.package)
        documented = documented_targets(opts.doc)
    except (OSError, Problem) as error:
        print(f"architecture: FAIL: {error}")
        print("0 passed, 1 failed, 0 skipped")
        return 1
    names = [name for name in targets if name in documented or not targets[name][1]]
    names += sorted(name for name in documented if name not in targets)
    passed, failed = 0, []
    for name in names:
        if name not in targets:
            problem = f"{doc} names a target that {package} does not have"
        elif name not in documented:
            problem = f"no row in {doc}'s '## {HEADING}' table"
        else:
            expected, written = targets[name][0], documented[name]
            problem = ""
            if written != expected:
                parts = []
                if expected - written:
                    parts.append(f"missing {listed(expected - written)}")
                if written - expected:
                    parts.append(f"not a dependency: {listed(written - expected)}")
                problem = f"may import {listed(written)}, Package.swift has {listed(expected)} ({'; '.join(parts)})"
        if problem:
            failed.append(name)
            print(f"FAIL  {name}: {problem}")
        else:
            passed += 1
            print(f"ok    {name}")
    if failed:
        print(f"architecture: FAIL: {len(failed)} of {len(names)} targets differ between {doc} and {package}: "
              f"{', '.join(failed)}")
    else:
        print(f"architecture: {passed} targets match Package.swift")
    print(f"{passed} passed, {len(failed)} failed, 0 skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
