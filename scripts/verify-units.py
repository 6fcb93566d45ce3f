#!/usr/bin/env python3
"""Check the systemd units nodeboot ships (units/) with systemd's own parser: `systemd-analyze verify`.

`systemd-analyze verify` exits 0 on unknown keys, bad values and unknown sections (it only warns), so any output at all
is a failure here. It also checks that ExecStart= binaries exist, so it runs with `--root=` (systemd 252 honours it for
verify: unit search paths and ExecStart paths are taken under the root) on an overlay of the Debian tree that
scripts/systemd-tree.sh builds: Debian's real containerd.service (for the drop-in), systemd's targets, and cloud-init
22.4's units, whose ordering nodeboot.service has to fit into. The units are installed and enabled there as a node image
would have them, with stand-ins for the nodeboot and kubelet binaries (verify only checks that they are executable).

Checks: each unit alone; the boot transaction (default.target, with cloud-init enabled as its generator does on an
instance) has no ordering cycle; no shipped unit is ordered after nodeboot.service (it starts them from inside its own
start job: a deadlock). Then two self-checks show the checker can fail: a copy of kubelet.service with a typo'd key, and
nodeboot.service with WantedBy=multi-user.target (the cycle through Debian's cloud-final.service), must be reported.

    scripts/verify-units.py [--units DIR] [--tree DIR]

One line per check, then `N passed, N failed, N skipped`; exit 1 if one failed. Without root, overlayfs or the tree
(no debootstrap, no mirror) it prints `verify-units: skipped (<reason>)` and exits 0.
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testkit import Report, overlay, systemd_tree, write  # noqa: E402

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAND_IN = "#!/bin/sh\n# stand-in for systemd-analyze verify (it only checks that ExecStart binaries are executable)\nexit 0\n"
# What an image's build installs as executables the units run (ExecStart=); /sbin/iptables is the tree's own.
EXECUTABLES = ("/usr/bin/kubelet", "/usr/bin/nodeboot")
# cloud-init's generator links cloud-init.target into multi-user.target when a datasource is found (every EC2 boot).
CLOUD_INIT_LINK = "/etc/systemd/system/multi-user.target.wants/cloud-init.target"


def unit_files(units_dir):
    """The units in DIR (names), and the drop-in directories (`<unit>.d`), as shipped."""
    names = sorted(n for n in os.listdir(units_dir) if os.path.isfile(os.path.join(units_dir, n)))
    dropins = sorted(n for n in os.listdir(units_dir) if n.endswith(".d") and os.path.isdir(os.path.join(units_dir, n)))
    return names, dropins


def install_units(root, units_dir):
    """Copy units/ into ROOT/etc/systemd/system (unit files and `<unit>.d/` drop-in directories); returns the names of
    the units they make up (a drop-in directory's unit included)."""
    names, dropins = unit_files(units_dir)
    target = os.path.join(root, "etc/systemd/system")
    for name in names:
        shutil.copyfile(os.path.join(units_dir, name), os.path.join(target, name))
        os.chmod(os.path.join(target, name), 0o644)
    for directory in dropins:
        os.makedirs(os.path.join(target, directory), exist_ok=True)
        for name in os.listdir(os.path.join(units_dir, directory)):
            shutil.copyfile(os.path.join(units_dir, directory, name), os.path.join(target, directory, name))
    return names + [d[:-2] for d in dropins if d[:-2] not in names]


def ordered_after_nodeboot(units_dir):
    """Lines of shipped units (and drop-ins) other than nodeboot.service that order them after nodeboot.service."""
    found = []
    for directory, _, files in os.walk(units_dir):
        for name in files:
            path = os.path.join(directory, name)
            if name == "nodeboot.service":
                continue
            with open(path) as f:
                for number, line in enumerate(f, 1):
                    if re.match(r"\s*(After|Requires|Requisite|BindsTo)\s*=.*\bnodeboot\.service\b", line):
                        found.append(f"{os.path.relpath(path, units_dir)}:{number}: {line.strip()}")
    return found


def verify(root, *names):
    """(exit status, everything systemd-analyze printed) for `systemd-analyze verify --root=ROOT NAMES`."""
    result = subprocess.run(["systemd-analyze", "verify", f"--root={root}", *names], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=60, cwd="/")
    return result.returncode, (result.stdout + result.stderr).strip()


def enable(root, *names):
    result = subprocess.run(["systemctl", f"--root={root}", "enable", *names], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"systemctl --root enable {' '.join(names)}: {result.stderr.strip()}")


def disable(root, *names):
    subprocess.run(["systemctl", f"--root={root}", "disable", *names], stdin=subprocess.DEVNULL,
                   capture_output=True, text=True, timeout=60)


def run_checks(root, units_dir, report):
    """Every check, in ROOT (an overlay of the tree, changed freely)."""
    for path in EXECUTABLES:
        write(root + path, STAND_IN, 0o755)
    names = install_units(root, units_dir)
    enable(root, *[n for n in unit_files(units_dir)[0] if n.endswith(".service")])  # as the image build enables them
    os.makedirs(os.path.dirname(root + CLOUD_INIT_LINK), exist_ok=True)
    os.symlink("/lib/systemd/system/cloud-init.target", root + CLOUD_INIT_LINK)

    for name in names:
        status, output = verify(root, name)
        what = f"{name}" + (" (with containerd.service.d/ drop-ins, Debian's containerd.service)"
                            if name == "containerd.service" else "")
        report.check(f"verify {what}", status == 0 and not output,
                     f"systemd-analyze verify printed something (exit {status})\n{output}")

    status, output = verify(root, "default.target")
    report.check("verify default.target (the boot: multi-user, cloud-init.target with cloud-final.service, nodeboot,"
                 " kubelet): no ordering cycle", status == 0 and not output,
                 f"systemd-analyze verify default.target (exit {status})\n{output}")

    lines = ordered_after_nodeboot(units_dir)
    report.check("no shipped unit is ordered after nodeboot.service (nodeboot starts them from its own start job)",
                 not lines, "ordered after nodeboot.service:\n" + "\n".join(lines))

    # Self-check 1: a typo'd key is reported (systemd-analyze exits 0 for it: the output is what counts).
    unit = os.path.join(root, "etc/systemd/system/kubelet.service")
    with open(unit) as f:
        original = f.read()
    # Append a typo'd key (rather than edit one the unit has) so the self-check always runs.
    write(unit, original.replace("[Service]\n", "[Service]\nKillMod=process\n", 1))
    status, output = verify(root, "kubelet.service")
    write(unit, original)
    report.check("self-check: kubelet.service with KillMod= (a typo) is reported",
                 "[Service]\n" in original and "Unknown key" in output and "KillMod" in output,
                 f"systemd-analyze verify did not report the typo (exit {status}): {output or '(no output)'}")

    # Self-check 2: the cycle nodeboot.service's [Install] avoids is found.
    unit = os.path.join(root, "etc/systemd/system/nodeboot.service")
    with open(unit) as f:
        original = f.read()
    disable(root, "nodeboot.service")
    write(unit, re.sub(r"(?m)^WantedBy=.*$", "WantedBy=multi-user.target", original))
    enable(root, "nodeboot.service")
    status, output = verify(root, "default.target")
    report.check("self-check: nodeboot.service with WantedBy=multi-user.target is reported as an ordering cycle",
                 "ordering cycle" in output and "cloud-final.service" in output,
                 f"no ordering cycle reported (exit {status}): {output or '(no output)'}")


def main():
    parser = argparse.ArgumentParser(description="systemd-analyze verify the units nodeboot ships.")
    parser.add_argument("--units", default=os.path.join(PROJECT, "units"), help="the units directory (units/)")
    parser.add_argument("--tree", help="a Debian tree with systemd (default: scripts/systemd-tree.sh builds/caches one)")
    opts = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds through the cleanup below
    report = Report()

    def skip(reason):
        print(f"verify-units: skipped ({reason})")
        report.counts["skipped"] += 1
        return report.summary()

    if os.geteuid() != 0:
        return skip("needs root: overlayfs mount")
    if not shutil.which("systemd-analyze") or not shutil.which("systemctl"):
        return skip("systemd-analyze is not installed")
    tree, why = (opts.tree, None) if opts.tree else systemd_tree(PROJECT)
    if not tree:
        return skip(why)
    scratch = tempfile.mkdtemp(prefix="nodeboot-verify-units-")
    try:
        with overlay(tree, scratch) as root:
            run_checks(root, os.path.abspath(opts.units), report)
    except (OSError, RuntimeError, subprocess.SubprocessError) as error:
        report.check("verify-units setup", False, str(error))
    except KeyboardInterrupt:
        print("verify-units: interrupted", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return report.summary()


if __name__ == "__main__":
    sys.exit(main())
