#!/usr/bin/env python3
"""make test: every test runner, each run even when one before it failed, then one summary of them all.

    scripts/test-all.py [--bin-dir DIR] [--swift SWIFT] [--only NAME]... [--log-dir DIR] [--from-log NAME=FILE]...
    scripts/test-all.py --self-test

Each runner's output (stdout and stderr) is shown as it comes and saved in LOG_DIR/NAME.log (default
.build/test-logs). Then a table: one line per runner with its result and counts, the skip reasons below it (a runner
that could not run at all, `systemd: skipped (needs root ...)`, and each skipped check or test), and last a plain line
`N passed, N failed, N skipped` totalled over the runners. Exit status 1 when any runner failed: a failed check, a
non-zero exit, or no closing line to read the counts from (a crash); such a runner counts at least one failure.

Counts: the Python runners close with `N passed, N failed, N skipped` and mark skips with `NAME: skipped (reason)`,
`skip NAME (reason)` or `skipped NAME: reason`. `swift test` runs XCTest and then swift-testing, and each closes with
its own line: XCTest `Executed N tests, with [S tests skipped and] K failures ...` (failed: its `Test Case '...'
failed` lines), swift-testing `✔ Test run with N tests in M suites passed after T seconds.` or `✘ ... failed after T
seconds with K issues.` (failed: its `✘ Test X failed after` lines; skipped: its `↪ Test X skipped: "reason"` lines,
and a skipped suite counts as one skipped item, since the tests in it are never counted).

--from-log NAME=FILE reads runner NAME's output from FILE instead of running it (to check the parsing);
--self-test checks the parsers against built-in samples of both closing formats.

A new runner is one line in RUNNERS.
"""
import argparse
import dataclasses
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testkit import stop_process  # noqa: E402

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shown(path):
    """A path as printed: relative to the project when inside it."""
    path = os.path.abspath(path)
    return os.path.relpath(path, PROJECT) if path.startswith(PROJECT + os.sep) else path


@dataclasses.dataclass
class Runner:
    name: str
    command: list  # {python}, {swift}, {bin_dir} and {log_dir} are substituted
    parse: object = None  # (output text) -> Counts; default: the Python runners' closing line


@dataclasses.dataclass
class Counts:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    skips: list = dataclasses.field(default_factory=list)  # reasons, one line each
    failures: list = dataclasses.field(default_factory=list)  # what failed, one line each
    problem: str = ""  # why the output says nothing trustworthy (no closing line)


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed, (\d+) skipped$", re.M)
RUNNER_SKIPPED = re.compile(r"^[\w. -]+: skipped \(.*\)$")
CHECK_SKIPPED = re.compile(r"^skip(?:ped)?\s+(\S.*)$")
CHECK_FAILED = re.compile(r"^(?:FAIL|failed)\s+(\S.*)$")


def parse_runner(text):
    """The Python runners: the last `N passed, N failed, N skipped` line; skip lines as they print them."""
    counts = Counts()
    found = SUMMARY.findall(text)
    if not found:
        counts.problem = "no closing 'N passed, N failed, N skipped' line"
    else:
        counts.passed, counts.failed, counts.skipped = map(int, found[-1])
    for line in text.splitlines():
        if RUNNER_SKIPPED.match(line):
            counts.skips.append(line)
        elif match := CHECK_SKIPPED.match(line):
            counts.skips.append("skipped: " + match.group(1))
        elif match := CHECK_FAILED.match(line):
            counts.failures.append("FAILED: " + match.group(1))
    return counts


XCTEST_CLOSING = re.compile(r"Executed (\d+) tests?, with (?:(\d+) tests? skipped and )?(\d+) failures?")
XCTEST_FAILED = re.compile(r"^Test Case '(.*)' failed \(", re.M)
TESTING_CLOSING = re.compile(
    r"^\S+ Test run with (\d+) tests?(?: in \d+ suites?)? (passed|failed) after [\d.]+ seconds?(?: with (\d+) issues?)?",
    re.M)
TESTING_FAILED = re.compile(
    r"^\S+ Test (?!run with )(.*) failed after [\d.]+ seconds?(?: with \d+ issues?)?(?: \(including \d+ known issues?\))?\.$",
    re.M)
TESTING_SKIPPED = re.compile(r'^\S+ (Test|Suite) (.*?) skipped(?:: "(.*)"|\.)$', re.M)


def parse_swift_test(text):
    """XCTest's and swift-testing's closing lines (the last of each), failed and skipped tests from their lines."""
    counts = Counts()
    xctest = XCTEST_CLOSING.findall(text)  # one per suite; the last is 'All tests'
    testing = TESTING_CLOSING.findall(text)
    if not xctest and not testing:
        counts.problem = "no closing line of XCTest ('Executed N tests') or swift-testing ('Test run with N tests')"
        return counts
    if xctest:
        executed, skipped, failures = int(xctest[-1][0]), int(xctest[-1][1] or 0), int(xctest[-1][2])
        failed_cases = XCTEST_FAILED.findall(text)
        counts.failures += [f"FAILED: test {name}" for name in failed_cases]
        failed = min(len(failed_cases) or failures, executed - skipped)
        counts.passed += executed - skipped - failed
        counts.failed += failed
        counts.skipped += skipped
    if testing:
        total, verdict = int(testing[-1][0]), testing[-1][1]
        failed_tests = TESTING_FAILED.findall(text)
        counts.failures += [f"FAILED: test {name}" for name in failed_tests]
        failed = len(failed_tests)
        if verdict == "failed" and failed == 0:
            failed = 1  # issues recorded outside any test
        skipped_tests = 0
        for kind, name, reason in TESTING_SKIPPED.findall(text):
            skipped_tests += kind == "Test"  # a skipped suite's tests are not in the run's test count
            counts.skipped += 1
            counts.skips.append(f"skipped: {kind.lower()} {name}" + (f" ({reason})" if reason else ""))
        counts.passed += max(total - failed - skipped_tests, 0)
        counts.failed += failed
    return counts


RUNNERS = [
    Runner("swift test", ["{swift}", "test", "--no-parallel"], parse_swift_test),
    Runner("conformance", ["{python}", "scripts/conformance.py", "--bin-dir", "{bin_dir}"]),
    Runner("bad-input", ["{python}", "scripts/bad-input.py", "--bin-dir", "{bin_dir}"]),
    Runner("fuzz", ["{python}", "scripts/fuzz.py", "--seconds", "5"]),
    Runner("kill-test", ["{python}", "scripts/kill-test.py", "--bin-dir", "{bin_dir}"]),
    Runner("vm", ["{python}", "scripts/vm-test.py", "--bin-dir", "{bin_dir}"]),
    Runner("verify-units", ["{python}", "scripts/verify-units.py"]),
    Runner("systemd", ["{python}", "scripts/systemd-test.py", "--bin-dir", "{bin_dir}"]),
    Runner("architecture", ["{python}", "scripts/check-architecture.py"]),
    Runner("cni-harness", ["{python}", "scripts/cni-harness.py", "--bin-dir", "{bin_dir}"]),
    Runner("ctr-cni", ["{python}", "scripts/ctr-cni.py", "--bin-dir", "{bin_dir}"]),
    Runner("image", ["{python}", "scripts/image-test.py", "--bin-dir", "{bin_dir}", "--swift", "{swift}"]),
    Runner("fault-matrix", ["{python}", "scripts/fault-matrix.py", "--bin-dir", "{bin_dir}"]),
    Runner("fleet", ["{python}", "scripts/fleet.py", "--bin-dir", "{bin_dir}", "-n", "200"]),
    # Last: it scans the saved logs of every runner above.
    Runner("secret-scan", ["{python}", "scripts/secret-scan.py", "--bin-dir", "{bin_dir}", "--log-dir", "{log_dir}"]),
]


@dataclasses.dataclass
class Result:
    name: str
    status: str  # passed, failed, skipped
    counts: Counts
    note: str
    seconds: float
    log: str


class Terminated(Exception):
    pass


def run(runner, opts):
    """Run one runner: output shown live and saved; its Result."""
    log = os.path.join(opts.log_dir, runner.name.replace(" ", "-") + ".log")
    command = [part.format(python=sys.executable, swift=opts.swift, bin_dir=opts.bin_dir, log_dir=opts.log_dir)
               for part in runner.command]
    print(f"\n== {runner.name}: {' '.join(command)}  (output also in {shown(log)})", flush=True)
    start = time.monotonic()
    chunks = []
    try:
        with open(log, "wb") as saved:
            proc = subprocess.Popen(command, cwd=PROJECT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            try:
                while chunk := os.read(proc.stdout.fileno(), 65536):
                    chunks.append(chunk)
                    saved.write(chunk)
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.flush()
                status = proc.wait()
            except BaseException:
                stop_process(proc, timeout=20)
                raise
            finally:
                proc.stdout.close()
    except OSError as error:
        return Result(runner.name, "failed", Counts(failed=1), f"cannot run {command[0]}: {error}", 0.0, log)
    return judge(runner, b"".join(chunks).decode("utf-8", "replace"), status, time.monotonic() - start, log)


def judge(runner, text, status, seconds, log):
    counts = (runner.parse or parse_runner)(ANSI.sub("", text))
    notes = [counts.problem] if counts.problem else []
    if status != 0:
        notes.append(f"exit status {status}" if status > 0 else f"killed by signal {-status}")
    if notes and counts.failed == 0:
        counts.failed = 1  # the runner itself failed: never a silent pass
    verdict = "failed" if counts.failed else "skipped" if counts.skipped and not counts.passed else "passed"
    return Result(runner.name, verdict, counts, "; ".join(notes), seconds, log)


def foundation_spawn_crash(result):
    """The crash report's first line when RESULT (swift test) died of a crash whose crashed thread's top frames are
    Foundation's Process.run(); else None."""
    if result.name != "swift test" or result.status != "failed":
        return None
    try:
        with open(result.log, encoding="utf-8", errors="replace") as f:
            text = ANSI.sub("", f.read())
    except OSError:
        return None
    match = re.search(r"\*\*\* Program crashed: (.*?) \*\*\*.*?crashed:\n\n((?:.*\n){1,3})", text, re.S)
    if match and re.search(r"\bProcess\.run\(\) \+ \d+ in libFoundation\.so", match.group(2)):
        return match.group(1)
    return None


MAX_LINES, MAX_WIDTH = 8, 150


def summary(results, log_dir):
    width = max(len(r.name) for r in results)
    print(f"\n== summary of make test (each runner's output: {shown(log_dir)}/NAME.log)")
    for r in results:
        c = r.counts
        line = f"{r.name:<{width}}  {r.status:<7}  {c.passed:>4} passed, {c.failed:>3} failed, {c.skipped:>3} skipped"
        line += f"  {r.seconds:6.0f} s"
        if r.note:
            line += f"  ({r.note})"
        print(line)
        for lines, what in ((c.failures, "failed"), (c.skips, "skipped")):
            for line in lines[:MAX_LINES]:
                print(f"    {line[:MAX_WIDTH]}" + ("..." if len(line) > MAX_WIDTH else ""))
            if len(lines) > MAX_LINES:
                print(f"    ... and {len(lines) - MAX_LINES} more {what} (see {shown(r.log)})")
    total = [sum(getattr(r.counts, key) for r in results) for key in ("passed", "failed", "skipped")]
    print("{} passed, {} failed, {} skipped".format(*total), flush=True)
    return 1 if any(r.status == "failed" for r in results) else 0


SELF_TEST = [
    # (output, passed, failed, skipped)
    ("Test Suite 'All tests' started at 2026-01-01 10:00:00.000\n"
     "Test Suite 'All tests' passed at 2026-01-01 10:00:00.001\n"
     "\t Executed 0 tests, with 0 failures (0 unexpected) in 0.0 (0.001) seconds\n"
     "\u25c7 Test run started.\n"
     "\u21aa Suite \"AWS client against moto\" skipped: \"moto_server is not installed (pip install 'moto[server]')\"\n"
     "\u21aa Test checksRoot() skipped: \"needs root\"\n"
     "\u21aa Test plain() skipped.\n"
     "\u2714 Test \"a test named failed after 3 seconds\" passed after 0.002 seconds.\n"
     "\u2714 Test run with 370 tests in 61 suites passed after 61.215 seconds.\n", 368, 0, 3),
    ("Test Suite 'All tests' started at 2026-01-01 10:00:00.000\n"
     "Test Case 'FooTests.testA' failed (0.002 seconds)\n"
     "\t Executed 12 tests, with 1 test skipped and 2 failures (0 unexpected) in 0.5 (0.5) seconds\n"
     "\t Executed 12 tests, with 1 test skipped and 2 failures (0 unexpected) in 0.5 (0.5) seconds\n"
     "\u25c7 Test run started.\n"
     "\u2718 Test encodes() recorded an issue at X.swift:3:5: Expectation failed: 1 == 2\n"
     "\u2718 Test encodes() failed after 0.010 seconds with 1 issue.\n"
     "\u2718 Test \"decodes\" failed after 0.020 seconds with 2 issues.\n"
     "\u2718 Suite \"Codec\" failed after 0.030 seconds with 3 issues.\n"
     "\u2718 Test run with 40 tests in 5 suites failed after 1.5 seconds with 3 issues.\n", 11 - 1 + 38, 1 + 2, 1),
    ("error: compile failed\n", 0, 1, 0),
]


def self_test():
    ok = True
    for number, (text, passed, failed, skipped) in enumerate(SELF_TEST, 1):
        result = judge(RUNNERS[0], text, 1 if failed else 0, 0.0, "")
        got = (result.counts.passed, result.counts.failed, result.counts.skipped)
        good = got == (passed, failed, skipped)
        ok &= good
        print(f"{'ok' if good else 'FAIL':<5} swift test sample {number}: {got}" + ("" if good else f", expected {(passed, failed, skipped)}"))
    sample = "ok    one\nskip  two (needs root)\nsystemd: skipped (needs root: systemd-nspawn)\n2 passed, 0 failed, 1 skipped\n"
    counts = parse_runner(sample)
    good = (counts.passed, counts.failed, counts.skipped, len(counts.skips)) == (2, 0, 1, 2)
    ok &= good
    print(f"{'ok' if good else 'FAIL':<5} runner sample: {counts}")
    return 0 if ok else 1


def main():
    parser = argparse.ArgumentParser(description="Run every test runner and summarise them.")
    parser.add_argument("--bin-dir", default=os.path.join(PROJECT, ".build", "debug"),
                        help="the debug binaries (default .build/debug)")
    parser.add_argument("--swift", default="swift", help="the swift driver (default: swift on PATH)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only these runners: " + ", ".join(r.name for r in RUNNERS))
    parser.add_argument("--log-dir", default=os.path.join(PROJECT, ".build", "test-logs"))
    parser.add_argument("--from-log", action="append", default=[], metavar="NAME=FILE",
                        help="take runner NAME's output from FILE instead of running it")
    parser.add_argument("--self-test", action="store_true", help="check the output parsers on built-in samples")
    opts = parser.parse_args()
    if opts.self_test:
        return self_test()
    names = {r.name for r in RUNNERS}
    saved = dict(entry.split("=", 1) for entry in opts.from_log if "=" in entry)
    unknown = (set(opts.only) | set(saved)) - names
    if unknown or len(saved) != len(opts.from_log):
        parser.error(f"unknown runner(s) {sorted(unknown)}: the runners are {sorted(names)}" if unknown
                     else "--from-log takes NAME=FILE")
    opts.bin_dir = os.path.abspath(opts.bin_dir)
    os.makedirs(opts.log_dir, exist_ok=True)

    def terminated(*_):
        raise Terminated()
    signal.signal(signal.SIGTERM, terminated)

    results = []
    try:
        for runner in RUNNERS:
            if opts.only and runner.name not in opts.only:
                continue
            if runner.name in saved:
                with open(saved[runner.name], encoding="utf-8", errors="replace") as f:
                    text = f.read()
                print(f"\n== {runner.name}: output read from {saved[runner.name]}")
                results.append(judge(runner, text, 0, 0.0, saved[runner.name]))
            else:
                result = run(runner, opts)
                crashed = []
                # At most twice more, and only for this crash: swift-corelibs-foundation's Process.run has crashed (a
                # bad pointer in its memcpy) while test support code started a child (curl in TestbedKubeAPITests);
                # seen in two of the last four clean-clone runs, never in nodeboot's code. Each crashed run's log is
                # kept, and the note on the result says how many there were.
                while len(crashed) < 2 and (crash := foundation_spawn_crash(result)):
                    kept = result.log[:-len(".log")] + f"-crashed{len(crashed) + 1}.log"
                    os.replace(result.log, kept)
                    crashed.append(shown(kept))
                    print(f"\ntest-all: {runner.name} crashed inside Foundation's Process.run ({crash}); running it"
                          f" again (the crashed run's log: {shown(kept)})", flush=True)
                    result = run(runner, opts)
                if crashed:
                    result.note = "; ".join(filter(None, [result.note, f"run {len(crashed) + 1} times: crashed inside"
                                                          f" Foundation's Process.run before, logs {', '.join(crashed)}"]))
                results.append(result)
    except (KeyboardInterrupt, Terminated):
        print("\ntest-all: interrupted; the runners so far:", flush=True)
        if results:
            summary(results, opts.log_dir)
        return 130
    return summary(results, opts.log_dir)


if __name__ == "__main__":
    sys.exit(main())
