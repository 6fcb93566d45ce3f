#!/usr/bin/env python3
"""Check the systemd units nodeboot ships (units/ and cloud-init/) with systemd's own parser: `systemd-analyze verify`.

`systemd-analyze verify` exits 0 on unknown keys, bad values, unknown sections and ordering cycles (it only warns), so
any output at all is a failure here. It also checks that ExecStart= binaries exist, so it runs with `--root=` (systemd
252 honours it for verify: unit search paths and ExecStart paths are taken under the root) on an overlay of the Debian
tree that scripts/systemd-tree.sh builds: Debian's real containerd.service (for the drop-in), systemd's targets, and
cloud-init's units, whose ordering the two boot phases (nodeboot-config.service before cloud-init's network stage,
nodeboot-run.service after cloud-final.service) have to fit into. The units are installed and enabled there as the node
image has them, with stand-ins for the nodeboot and kubelet binaries (verify only checks that they are executable).

Two sets of cloud-init units, each on its own overlay:
  bookworm: the tree's own, cloud-init 22.4 (network stage `cloud-init.service`);
  trixie:   cloud-init 25.1.4's units from Debian 13's package (network stage `cloud-init-network.service`, Before=
            network-online.target), fetched once with `apt-get download` (a private apt configuration: the host's apt
            sources are untouched) and cached under /var/cache/nodeboot/cloud-init-trixie; they replace the tree's.
            The node image (image/) is trixie; image/validate.py checks it again with the image's own systemd 257.

Checks per set: each shipped unit alone; the boot transaction (default.target, with cloud-init.target linked as its
generator does on an instance) has no ordering cycle; no shipped unit other than the pair is ordered after
nodeboot-config.service or nodeboot-run.service (nodeboot starts them from inside the run unit's start job: a
deadlock). Self-checks, which must be reported: kubelet.service with a typo'd key; nodeboot-run.service as AL2023 has it,
WantedBy=multi-user.target and no After=multi-user.target (the cycle through Debian's cloud-final.service); nodeboot-config.service with the default
dependencies (the cycle through sysinit.target, which drops cloud-init's network stage); on trixie,
nodeboot-config.service After=network-online.target (the cycle through cloud-init-network.service).

    scripts/verify-units.py [--units DIR]... [--tree DIR] [--trixie-units DIR]

One line per check, then `N passed, N failed, N skipped`; exit 1 if one failed. Without root, overlayfs or the tree
(no debootstrap, no mirror) it prints `verify-units: skipped (<reason>)` and exits 0; without the trixie package (no
mirror) the trixie set is skipped with the reason.
"""
import argparse
import glob
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
CACHE = os.environ.get("NODEBOOT_TREE_CACHE", "/var/cache/nodeboot")
MIRROR = os.environ.get("NODEBOOT_DEBIAN_MIRROR", "http://deb.debian.org/debian")
STAND_IN = "#!/bin/sh\n# stand-in for systemd-analyze verify (it only checks that ExecStart binaries are executable)\nexit 0\n"
# What an image's build installs as executables the units run (ExecStart=); /sbin/iptables is the tree's own.
EXECUTABLES = ("/usr/bin/kubelet", "/usr/bin/nodeboot")
# cloud-init's generator links cloud-init.target into multi-user.target when a datasource is found (every EC2 boot).
CLOUD_INIT_LINK = "/etc/systemd/system/multi-user.target.wants/cloud-init.target"
CONFIG_UNIT, RUN_UNIT = "nodeboot-config.service", "nodeboot-run.service"
UNIT_SUFFIX = re.compile(r"\.(service|socket|target|timer|mount|path|slice)$")
# The cloud-init units of Debian 13's package, in the order their [Install] sections are enabled.
TRIXIE_CLOUD_INIT = ("cloud-init-main.service", "cloud-init-local.service", "cloud-init-network.service",
                     "cloud-config.service", "cloud-final.service")


def unit_files(units_dir):
    """The unit files in DIR (names), and the drop-in directories (`<unit>.d`), as shipped. Other files and
    directories (cloud-init/'s cloud.cfg.d, examples, README.md) are not units."""
    entries = sorted(os.listdir(units_dir))
    names = [n for n in entries if UNIT_SUFFIX.search(n) and os.path.isfile(os.path.join(units_dir, n))]
    dropins = [n for n in entries if n.endswith(".d") and UNIT_SUFFIX.search(n[:-2])
               and os.path.isdir(os.path.join(units_dir, n))]
    return names, dropins


def install_units(root, units_dirs):
    """Copy each DIR's units into ROOT/etc/systemd/system (unit files and `<unit>.d/` drop-in directories); returns
    (the names of the units they make up, a drop-in directory's unit included; the unit files' names)."""
    target = os.path.join(root, "etc/systemd/system")
    units, files = [], []
    for units_dir in units_dirs:
        names, dropins = unit_files(units_dir)
        for name in names:
            shutil.copyfile(os.path.join(units_dir, name), os.path.join(target, name))
            os.chmod(os.path.join(target, name), 0o644)
        for directory in dropins:
            os.makedirs(os.path.join(target, directory), exist_ok=True)
            for name in os.listdir(os.path.join(units_dir, directory)):
                shutil.copyfile(os.path.join(units_dir, directory, name), os.path.join(target, directory, name))
        files += names
        units += names + [d[:-2] for d in dropins if d[:-2] not in names]
    return units, files


def ordered_after_boot_units(units_dirs):
    """Lines of shipped units (and drop-ins) that order them after nodeboot-config.service or nodeboot-run.service,
    other than the run unit's own After=/Requires= on the config unit."""
    found = []
    pattern = re.compile(r"\s*(After|Requires|Requisite|BindsTo)\s*=(.*)$")
    for units_dir in units_dirs:
        for directory, _, files in os.walk(units_dir):
            for name in files:
                path = os.path.join(directory, name)
                unit = os.path.basename(directory)[:-2] if directory != units_dir else name
                if not UNIT_SUFFIX.search(unit):
                    continue
                with open(path) as f:
                    for number, line in enumerate(f, 1):
                        match = pattern.match(line)
                        if not match:
                            continue
                        named = set(match.group(2).split()) & {CONFIG_UNIT, RUN_UNIT}
                        if unit == RUN_UNIT:
                            named.discard(CONFIG_UNIT)
                        if unit in named:
                            named.discard(unit)
                        if named:
                            found.append(f"{os.path.relpath(path, PROJECT)}:{number}: {line.strip()}")
    return found


def verify(root, *names):
    """(exit status, everything systemd-analyze printed) for `systemd-analyze verify --root=ROOT NAMES`."""
    result = subprocess.run(["systemd-analyze", "verify", f"--root={root}", *names], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=60, cwd="/")
    return result.returncode, (result.stdout + result.stderr).strip()


def systemctl(root, verb, *names):
    result = subprocess.run(["systemctl", f"--root={root}", verb, *names], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0 and verb == "enable":
        raise RuntimeError(f"systemctl --root {verb} {' '.join(names)}: {result.stderr.strip()}")


def trixie_cloud_init(cache):
    """The unit directory of Debian 13's cloud-init package, downloaded once with a private apt configuration (its own
    sources list, lists and archive directories under CACHE; the host's apt is untouched) and extracted there. Returns
    (directory, version, None) or (None, None, why not)."""
    base = os.path.join(cache, "cloud-init-trixie")
    found = sorted(glob.glob(os.path.join(base, "*", "usr/lib/systemd/system/cloud-final.service")))
    if found:
        units = os.path.dirname(found[-1])
        return units, os.path.basename(units.split("/usr/lib/")[0]), None
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        return None, None, "apt-get/dpkg-deb missing"
    apt = os.path.join(base, ".apt")
    for sub in ("lists/partial", "archives/partial"):
        os.makedirs(os.path.join(apt, sub), exist_ok=True)
    write(os.path.join(apt, "sources.list"),
          f"deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {MIRROR} trixie main\n")
    options = ["-o", f"Dir::Etc::SourceList={apt}/sources.list", "-o", "Dir::Etc::SourceParts=/dev/null",
               "-o", f"Dir::State::Lists={apt}/lists", "-o", f"Dir::Cache={apt}", "-o", "Dir::Cache::Archives=archives",
               "-o", "Dir::State::status=/dev/null", "-o", "APT::Sandbox::User=root", "-qq"]
    for argv in (["apt-get", *options, "update"], ["apt-get", *options, "download", "cloud-init"]):
        result = subprocess.run(argv, cwd=apt, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            return None, None, f"{' '.join(argv[:1] + argv[-2:])} failed: {(result.stderr.strip() or '?')[-300:]}"
    debs = glob.glob(os.path.join(apt, "cloud-init_*.deb"))
    if not debs:
        return None, None, "apt-get download cloud-init left no .deb"
    version = os.path.basename(debs[0]).split("_")[1]
    tmp = tempfile.mkdtemp(prefix=".extract.", dir=base)
    subprocess.run(["dpkg-deb", "-x", debs[0], tmp], check=True, capture_output=True, timeout=120)
    os.rename(tmp, os.path.join(base, version))
    shutil.rmtree(apt, ignore_errors=True)  # the lists are 20 MB; the extracted package is what is kept
    return os.path.join(base, version, "usr/lib/systemd/system"), version, None


def use_cloud_init_units(root, units_dir):
    """Replace ROOT's cloud-init units by those in UNITS_DIR, enabled as the package's postinst enables them."""
    lib = os.path.join(root, "usr/lib/systemd/system")
    for path in glob.glob(os.path.join(lib, "cloud-*")) + glob.glob(os.path.join(root, "etc/systemd/system/cloud-*")):
        shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)
    for name in os.listdir(units_dir):
        if UNIT_SUFFIX.search(name) and os.path.isfile(os.path.join(units_dir, name)):  # not sshd's drop-in directory
            shutil.copyfile(os.path.join(units_dir, name), os.path.join(lib, name))
    systemctl(root, "enable", *TRIXIE_CLOUD_INIT)


def mutate(report, root, name, label, unit, edit, expect, reenable=False):
    """A self-check: UNIT edited by EDIT (text -> text) must make verify of default.target print every string in
    EXPECT; the unit is restored afterwards."""
    path = os.path.join(root, "etc/systemd/system", unit)
    with open(path) as f:
        original = f.read()
    changed = edit(original)
    if reenable:
        systemctl(root, "disable", unit)
    write(path, changed)
    if reenable:
        systemctl(root, "enable", unit)
    status, output = verify(root, "default.target")
    if reenable:
        systemctl(root, "disable", unit)
    write(path, original)
    if reenable:
        systemctl(root, "enable", unit)
    report.check(f"self-check ({label}): {name} is reported", changed != original and all(s in output for s in expect),
                 f"expected {expect} in the output (exit {status}): {output or '(no output)'}")


def run_checks(root, units_dirs, report, label, network_stage, trixie_units=None):
    """Every check of one cloud-init set, in ROOT (an overlay of the tree, changed freely)."""
    for path in EXECUTABLES:
        write(root + path, STAND_IN, 0o755)
    if trixie_units:
        use_cloud_init_units(root, trixie_units)
    names, files = install_units(root, units_dirs)
    systemctl(root, "enable", *[n for n in files if n.endswith(".service")])  # as the image build enables them
    os.makedirs(os.path.dirname(root + CLOUD_INIT_LINK), exist_ok=True)
    if not os.path.lexists(root + CLOUD_INIT_LINK):
        os.symlink("/lib/systemd/system/cloud-init.target", root + CLOUD_INIT_LINK)

    for name in names:
        status, output = verify(root, name)
        what = name + (" (with containerd.service.d/ drop-ins, Debian's containerd.service)"
                       if name == "containerd.service" else "")
        report.check(f"{label}: verify {what}", status == 0 and not output,
                     f"systemd-analyze verify printed something (exit {status})\n{output}")

    status, output = verify(root, "default.target")
    report.check(f"{label}: verify default.target (the boot: {CONFIG_UNIT} before {network_stage}, cloud-init.target"
                 f" with cloud-final.service, {RUN_UNIT}, kubelet): no ordering cycle", status == 0 and not output,
                 f"systemd-analyze verify default.target (exit {status})\n{output}")

    # Self-check 1: a typo'd key is reported (systemd-analyze exits 0 for it: the output is what counts). Appended
    # rather than an existing key edited, so the self-check always runs.
    unit = os.path.join(root, "etc/systemd/system/kubelet.service")
    with open(unit) as f:
        original = f.read()
    write(unit, original.replace("[Service]\n", "[Service]\nKillMod=process\n", 1))
    status, output = verify(root, "kubelet.service")
    write(unit, original)
    report.check(f"self-check ({label}): kubelet.service with KillMod= (a typo) is reported",
                 "[Service]\n" in original and "Unknown key" in output and "KillMod" in output,
                 f"systemd-analyze verify did not report the typo (exit {status}): {output or '(no output)'}")

    # Self-check 2: the cycle the run unit's [Install] avoids: AL2023's form, WantedBy=multi-user.target and ordered
    # after cloud-final.service only (a unit ordered After= its target gets no implicit ordering from it, so the
    # explicit After=multi-user.target goes too).
    mutate(report, root, f"{RUN_UNIT} as AL2023 has it, WantedBy=multi-user.target (cycle through cloud-final.service)",
           label, RUN_UNIT,
           lambda text: re.sub(r"(?m)^WantedBy=.*$", "WantedBy=multi-user.target",
                               re.sub(r"(?m)^(After=.*cloud-final\.service) multi-user\.target", r"\1", text)),
           ["ordering cycle", "cloud-final.service"], reenable=True)
    # Self-check 3: the cycle DefaultDependencies=no avoids (config unit after sysinit.target, before the network stage).
    mutate(report, root, f"{CONFIG_UNIT} with the default dependencies (cycle through sysinit.target)", label,
           CONFIG_UNIT, lambda text: text.replace("DefaultDependencies=no\n", ""),
           ["ordering cycle", network_stage, "sysinit.target"])
    # Self-check 4 (trixie): network-online.target is after the network stage there.
    if trixie_units:
        mutate(report, root, f"{CONFIG_UNIT} After=network-online.target (cycle through {network_stage})", label,
               CONFIG_UNIT, lambda text: re.sub(r"(?m)^After=systemd-networkd-wait-online\.service",
                                                "After=network-online.target systemd-networkd-wait-online.service", text),
               ["ordering cycle", network_stage, "network-online.target"])


def main():
    parser = argparse.ArgumentParser(description="systemd-analyze verify the units nodeboot ships.")
    parser.add_argument("--units", action="append",
                        help="a units directory (repeatable; default: units/ and cloud-init/)")
    parser.add_argument("--tree", help="a Debian tree with systemd (default: scripts/systemd-tree.sh builds/caches one)")
    parser.add_argument("--trixie-units", help="cloud-init 25's unit directory (default: from Debian 13's package)")
    opts = parser.parse_args()
    units_dirs = [os.path.abspath(d) for d in (opts.units or [os.path.join(PROJECT, "units"),
                                                               os.path.join(PROJECT, "cloud-init")])]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds through the cleanup below
    report = Report()

    def skip(reason):
        return report.skip_runner("verify-units", reason)

    if os.geteuid() != 0:
        return skip("needs root: overlayfs mount")
    if not shutil.which("systemd-analyze") or not shutil.which("systemctl"):
        return skip("systemd-analyze is not installed")
    tree, why = (opts.tree, None) if opts.tree else systemd_tree(PROJECT)
    if not tree:
        return skip(why)
    if opts.trixie_units:
        trixie, version, why = opts.trixie_units, "given", None
    else:
        trixie, version, why = trixie_cloud_init(CACHE)
    sets = [("bookworm cloud-init 22.4", "cloud-init.service", None)]
    if trixie:
        sets.append((f"trixie cloud-init {version}", "cloud-init-network.service", trixie))
    else:
        report.skip("trixie cloud-init units", why)
    for label, network_stage, trixie_units in sets:
        scratch = tempfile.mkdtemp(prefix="nodeboot-verify-units-")
        try:
            with overlay(tree, scratch) as root:
                run_checks(root, units_dirs, report, label, network_stage, trixie_units)
        except (OSError, RuntimeError, subprocess.SubprocessError) as error:
            report.check(f"{label}: verify-units setup", False, str(error))
        except KeyboardInterrupt:
            print("verify-units: interrupted", file=sys.stderr)
            return 130
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    lines = ordered_after_boot_units(units_dirs)
    report.check(f"no shipped unit is ordered after {CONFIG_UNIT} or {RUN_UNIT} (nodeboot starts them from inside the"
                 " run unit's start job)", not lines, "ordered after the boot units:\n" + "\n".join(lines))
    return report.summary()


if __name__ == "__main__":
    sys.exit(main())
