#!/usr/bin/env python3
"""make release: the agent links only the libraries docs/architecture.md names.

    scripts/check-links.py [--doc FILE] [--allow-swift-runtime] BINARY

Runs `ldd BINARY` and compares every library it lists with the allowed list: the section of docs/architecture.md
headed `Libraries the agent links` (any heading level), up to the next heading. The list is the first column of the
Markdown table in that section (the header row and the `|---|` row are skipped; backticks are removed), or, when
the section has no table, the first word of each line of a fenced block in it. An entry is a soname (`libc.so.6`) or a
prefix of sonames (`libgcrypt` allows `libgcrypt.so.20`): a library is allowed when its soname equals an entry or
begins with the entry followed by `.`.

--allow-swift-runtime also allows what the debug build links dynamically from the Swift toolchain (libraries whose
path has /lib/swift/ in it): the release build links the Swift runtime statically and is checked without it.

Prints each library with the reason the document gives; exit 1 when one is not allowed or not found, 2 when the
binary or the list cannot be read.
"""
import argparse
import os
import re
import subprocess
import sys

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADING = "Libraries the agent links"


def allowed_libraries(path):
    """[(entry, reason)] from the section HEADING of the document at path."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    start = next((i for i, line in enumerate(lines)
                  if re.fullmatch(r"#+\s+" + re.escape(HEADING) + r"\s*#*\s*", line.strip())), None)
    if start is None:
        raise ValueError(f"{path} has no heading '{HEADING}'")
    section = []
    fenced = False
    for line in lines[start + 1:]:
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            break
        section.append(line)
    table, block, fenced = [], [], False
    for line in section:
        stripped = line.strip()
        if stripped.startswith("```"):
            fenced = not fenced
        elif fenced:
            if stripped:
                entry, _, reason = stripped.partition(" ")
                block.append((entry.strip("`"), reason.strip()))
        elif stripped.startswith("|"):
            cells = [cell.strip() for cell in stripped.strip("|").split("|")]
            if all(re.fullmatch(r":?-+:?", cell) for cell in cells if cell):
                continue
            table.append((cells[0].strip("`").strip(), (cells[1] if len(cells) > 1 else "").strip()))
    entries = table[1:] if table else block  # a table's first row is its header
    entries = [(entry, reason) for entry, reason in entries if entry]
    if not entries:
        raise ValueError(f"{path}: the section '{HEADING}' has no table or fenced block of libraries")
    return entries


def linked_libraries(binary):
    """[(soname, resolved path or None)] from ldd; [] for a static binary."""
    result = subprocess.run(["ldd", binary], capture_output=True, text=True)
    output = result.stdout + result.stderr
    if "not a dynamic executable" in output or "statically linked" in output:
        return []
    if result.returncode != 0:
        raise ValueError(f"ldd {binary}: exit {result.returncode}: {output.strip()}")
    libraries = []
    for line in result.stdout.splitlines():
        name, arrow, target = line.strip().partition("=>")
        name = name.split(" (")[0].strip()
        if not name:
            continue
        if arrow:  # libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...), or => not found
            target = target.split(" (")[0].strip()
            resolved = None if target.startswith("not found") or not target else target
        else:  # /lib64/ld-linux-x86-64.so.2 (0x...), linux-vdso.so.1 (0x...)
            resolved = "(the kernel's vDSO)" if name.startswith(("linux-vdso", "linux-gate")) else name
        libraries.append((os.path.basename(name), resolved))
    return libraries


def reason_for(soname, entries):
    for entry, reason in entries:
        if soname == entry or soname.startswith(entry + "."):
            return entry, reason
    return None, None


def main():
    parser = argparse.ArgumentParser(description="Check the agent's ldd against docs/architecture.md.")
    parser.add_argument("binary", help="the nodeboot binary (the release one: make release)")
    parser.add_argument("--doc", default=os.path.join(PROJECT, "docs", "architecture.md"))
    parser.add_argument("--allow-swift-runtime", action="store_true",
                        help="also allow the toolchain's Swift runtime libraries (a debug build)")
    opts = parser.parse_args()
    try:
        entries = allowed_libraries(opts.doc)
        if not os.access(opts.binary, os.X_OK):
            raise ValueError(f"{opts.binary} is missing or not executable")
        libraries = linked_libraries(opts.binary)
    except (OSError, ValueError) as error:
        print(f"check-links: {error}", file=sys.stderr)
        return 2
    doc = os.path.relpath(opts.doc, PROJECT) if os.path.abspath(opts.doc).startswith(PROJECT + "/") else opts.doc
    bad, used = [], set()
    print(f"check-links: {opts.binary} links {len(libraries)} libraries (allowed: {doc}, '{HEADING}')")
    for soname, resolved in libraries:
        entry, reason = reason_for(soname, entries)
        if resolved is None:
            bad.append(f"{soname}: not found by the loader")
            verdict = "NOT FOUND"
        elif entry:
            used.add(entry)
            verdict = f"ok  {reason}".rstrip()
        elif opts.allow_swift_runtime and resolved and "/lib/swift/" in resolved:
            verdict = "ok  the Swift runtime (debug build)"
        else:
            bad.append(f"{soname} ({resolved})")
            verdict = "NOT ALLOWED"
        print(f"  {soname:<28} {verdict}")
    unused = [entry for entry, _ in entries if entry not in used]
    if unused:
        print(f"check-links: named in {doc} but not linked (fine, or a stale entry): {', '.join(unused)}")
    if bad:
        print(f"check-links: FAIL: {opts.binary} links what {doc} does not allow: {'; '.join(bad)}. "
              f"Drop the dependency, or name the library in '{HEADING}' with its reason.", file=sys.stderr)
        return 1
    print(f"check-links: ok, every library is in {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
