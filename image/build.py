#!/usr/bin/env python3
"""Build the nodeboot node image: a raw GPT disk with an ext4 root, plus the kernel, initrd and command line that boot
it directly (qemu -kernel/-initrd/-append), cached outside the repository.

    image/build.py --bin-dir DIR [--cache DIR] [--force] [--root-size SIZE] [--keep-tree]

DIR holds the release nodeboot and nodeboot-cni (`make release`). The output directory is
CACHE/<key> (CACHE default /var/cache/nodeboot/image), <key> a hash of the inputs: the two binaries, image/'s recipe
(packages.txt, provision.sh, pause.py, kubelet-stand-in.py, build.py, validate.py, rootfs/), cloud-init/'s units and
cloud.cfg.d, units/, and compat/bootstrap.sh when the repository has it. An output already there is reused (nothing
runs). CACHE/current points at the last one built or reused. The output's last line on stdout is the output directory,
which holds:
  disk.raw       raw GPT disk: one partition, GPT label 'root' (type root-x86-64), ext4 labelled 'root'
  vmlinuz        the image's kernel (Debian's linux-image-cloud-amd64)
  initrd.img     its initramfs-tools initrd
  cmdline        one line: the kernel command line that boots disk.raw as the first virtio disk
  manifest.json  the key and inputs, package versions, sizes, the build's seconds per step, the pause image
The steps (image/README.md): mmdebstrap (root mode, minbase, Debian 13 from the mirror) → provision.sh in a chroot
(the script the Packer template runs too) → validate.py on the tree → mkfs.ext4 -d → systemd-repart (CopyBlocks=) →
fallocate --dig-holes (sparse again) → validate.py on the disk. The Debian mirror's state is not an input: --force rebuilds with today's packages.

Needs root, mmdebstrap, mkfs.ext4, systemd-repart, sfdisk, fallocate (scripts/setup.sh test installs them). Exit 0 with the
output directory; 1 when a step failed (its log's tail on stderr); 2 when it cannot run here.
"""
import argparse
import contextlib
import fcntl
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

IMAGE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(IMAGE)
DEFAULT_CACHE = os.path.join(os.environ.get("NODEBOOT_TREE_CACHE", "/var/cache/nodeboot"), "image")
MIRROR = os.environ.get("NODEBOOT_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SUITE = "trixie"
CMDLINE = "root=PARTLABEL=root rw console=ttyS0"
RECIPE = ("packages.txt", "provision.sh", "pause.py", "kubelet-stand-in.py", "build.py", "validate.py")
BINARIES = ("nodeboot", "nodeboot-cni")
TOOLS = ("mmdebstrap", "mkfs.ext4", "systemd-repart", "sfdisk", "fallocate", "unshare", "chroot")
KEEP = 2  # image directories kept in the cache: current and the one before


class Failed(Exception):
    pass


def log(text):
    print(f"image: {text}", file=sys.stderr, flush=True)


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def inputs(bin_dir):
    """{name as recorded: (source path, sha256)} of everything the image is made from."""
    found = {f"bin/{b}": os.path.join(bin_dir, b) for b in BINARIES}
    found.update({f"image/{n}": os.path.join(IMAGE, n) for n in RECIPE})
    for pattern in ("cloud-init/*.service", "cloud-init/cloud.cfg.d/*.cfg", "units/*", "units/*/*", "image/rootfs/**"):
        for path in sorted(glob.glob(os.path.join(PROJECT, pattern), recursive=True)):
            if os.path.isfile(path):
                found[os.path.relpath(path, PROJECT)] = path
    bootstrap = os.path.join(PROJECT, "compat", "bootstrap.sh")
    if os.path.isfile(bootstrap):
        found["compat/bootstrap.sh"] = bootstrap
    return {name: (path, sha256_file(path)) for name, path in sorted(found.items())}


def key_of(found):
    text = "".join(f"{name} {digest}\n" for name, (_, digest) in found.items()) + f"{SUITE} {CMDLINE}\n"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def packages():
    with open(os.path.join(IMAGE, "packages.txt")) as f:
        return [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]


def step(name, argv, logs, timeout=1800, **kwargs):
    """Runs ARGV with its output in LOGS/NAME.log; raises Failed with the log's tail."""
    path = os.path.join(logs, f"{name}.log")
    start = time.monotonic()
    with open(path, "w") as out:
        result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                timeout=timeout, **kwargs)
    seconds = time.monotonic() - start
    if result.returncode != 0:
        with open(path, errors="replace") as f:
            tail = "".join(f.readlines()[-30:])
        raise Failed(f"{name} failed (exit {result.returncode}, {seconds:.1f} s); the end of {path}:\n{tail}")
    log(f"{name}: {seconds:.1f} s")
    return seconds


def in_chroot(tree, command):
    """A shell command in a chroot of TREE with /proc, /sys, /dev and a /run tmpfs, in a private mount namespace
    (the mounts go with it, however the command ends)."""
    script = (f"set -e; mount -t proc proc {tree}/proc; mount -t sysfs sys {tree}/sys; mount --rbind /dev {tree}/dev;"
              f" mount -t tmpfs tmpfs {tree}/run; exec chroot {tree} {command}")
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]


def stage(tree, found):
    """Fills TREE/tmp/nodeboot-stage as provision.sh expects it; returns the pause image's description."""
    where = os.path.join(tree, "tmp", "nodeboot-stage")
    for sub in ("bin", "units", "cloud.cfg.d"):
        os.makedirs(os.path.join(where, sub), exist_ok=True)
    for name, (path, _) in found.items():
        if name.startswith("bin/"):
            shutil.copy2(path, os.path.join(where, name))
        elif name.startswith("units/") or (name.startswith("cloud-init/") and name.endswith(".service")):
            target = os.path.join(where, "units", os.path.relpath(path, os.path.dirname(path) if
                                                                  name.startswith("cloud-init/") else
                                                                  os.path.join(PROJECT, "units")))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(path, target)
        elif name.startswith("cloud-init/cloud.cfg.d/"):
            shutil.copyfile(path, os.path.join(where, "cloud.cfg.d", os.path.basename(path)))
        elif name.startswith("image/rootfs/"):
            target = os.path.join(where, "rootfs", os.path.relpath(path, os.path.join(IMAGE, "rootfs")))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(path, target)
        elif name == "compat/bootstrap.sh":
            shutil.copyfile(path, os.path.join(where, "bootstrap.sh"))
    for name in ("provision.sh", "kubelet-stand-in.py", "packages.txt", "pause.py"):
        shutil.copy2(os.path.join(IMAGE, name), os.path.join(where, name))
    result = subprocess.run([sys.executable, os.path.join(IMAGE, "pause.py"), os.path.join(tree, "usr/bin/catatonit"),
                             os.path.join(where, "pause.tar")], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def dpkg_versions(tree):
    result = subprocess.run(["chroot", tree, "dpkg-query", "-W", "-f", "${Package}\t${Version}\n"],
                            capture_output=True, text=True, check=True)
    return dict(line.split("\t", 1) for line in result.stdout.splitlines() if "\t" in line)


def du(path):
    return int(subprocess.run(["du", "-sb", "--one-file-system", path], capture_output=True, text=True,
                              check=True).stdout.split()[0])


def allocated(path):
    return os.stat(path).st_blocks * 512


def build(opts, found, key, out):
    """Everything, into OUT (a directory beside the cache's entries, renamed into place by the caller)."""
    seconds, started = {}, time.monotonic()
    logs = os.path.join(out, "logs")
    os.makedirs(logs)
    tree = os.path.join(out, "tree")
    seconds["mmdebstrap"] = step("mmdebstrap", [
        "mmdebstrap", "--mode=root", "--variant=minbase", "--format=directory", "--components=main",
        "--include=" + ",".join(packages()), SUITE, tree, MIRROR], logs)
    pause = stage(tree, found)
    seconds["provision"] = step("provision", in_chroot(tree, "/tmp/nodeboot-stage/provision.sh /tmp/nodeboot-stage"),
                                logs)
    # Local disk only (the AMI keeps its own): the root file system by its label, checked at boot.
    with open(os.path.join(tree, "etc/fstab"), "w") as f:
        f.write("# nodeboot image (image/build.py): the root file system made by mkfs.ext4 -L root\n"
                "LABEL=root / ext4 defaults,errors=remount-ro 0 1\n")
    versions = dpkg_versions(tree)
    kernel = sorted(glob.glob(os.path.join(tree, "boot/vmlinuz-*")))[-1]
    kernel_version = os.path.basename(kernel)[len("vmlinuz-"):]
    shutil.copyfile(kernel, os.path.join(out, "vmlinuz"))
    shutil.copyfile(os.path.join(tree, f"boot/initrd.img-{kernel_version}"), os.path.join(out, "initrd.img"))
    with open(os.path.join(out, "cmdline"), "w") as f:
        f.write(CMDLINE + "\n")
    validate = [sys.executable, os.path.join(IMAGE, "validate.py")] + \
        (["--bootstrap-sh"] if "compat/bootstrap.sh" in found else [])
    seconds["validate-tree"] = step("validate-tree", validate + ["--tree", tree], logs)
    tree_bytes = du(tree)

    root_fs = os.path.join(out, "root.ext4")
    with open(root_fs, "wb") as f:
        f.truncate(opts.root_size)
    seconds["mkfs"] = step("mkfs", ["mkfs.ext4", "-q", "-F", "-L", "root", "-d", tree, root_fs], logs)
    if not opts.keep_tree:
        shutil.rmtree(tree)
    definitions = os.path.join(out, "repart.d")
    os.makedirs(definitions)
    with open(os.path.join(definitions, "10-root.conf"), "w") as f:
        f.write(f"[Partition]\nType=root-x86-64\nLabel=root\nCopyBlocks={root_fs}\n")
    disk = os.path.join(out, "disk.raw")
    seconds["repart"] = step("repart", ["systemd-repart", "--empty=create", "--size=auto", "--dry-run=no",
                                        f"--definitions={definitions}", disk], logs)
    os.remove(root_fs)
    shutil.rmtree(definitions)
    # systemd-repart 252 writes CopyBlocks= out in full (2 GiB allocated for 0.6 GiB of data): punch the zeros back
    # into holes, so the cache and every copy a test boots stay sparse.
    seconds["sparse"] = step("sparse", ["fallocate", "--dig-holes", disk], logs)
    seconds["validate-disk"] = step("validate-disk", validate + ["--disk", disk], logs)
    seconds["total"] = time.monotonic() - started
    with open(os.path.join(logs, "validate-disk.log")) as f:
        validated = f.read().strip().splitlines()[-1]
    manifest = {
        "key": key, "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "suite": SUITE, "mirror": MIRROR,
        "cmdline": CMDLINE, "kernel": kernel_version, "pause_image": pause,
        "inputs": {name: digest for name, (_, digest) in found.items()},
        "packages": {name: versions.get(name) for name in packages()}, "installed_packages": len(versions),
        "all_packages": versions,
        "sizes": {"tree_bytes": tree_bytes, "root_fs_bytes": opts.root_size,
                  "disk_raw_bytes": os.path.getsize(disk), "disk_raw_allocated_bytes": allocated(disk),
                  "vmlinuz_bytes": os.path.getsize(os.path.join(out, "vmlinuz")),
                  "initrd_bytes": os.path.getsize(os.path.join(out, "initrd.img"))},
        "seconds": {k: round(v, 1) for k, v in seconds.items()}, "validate": validated,
    }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
    return manifest


def point_current(cache, key):
    link = os.path.join(cache, "current")
    partial = f"{link}.{os.getpid()}"
    os.symlink(key, partial)
    os.replace(partial, link)  # atomic: a reader sees the old or the new target


def prune(cache, key):
    """Keeps the KEEP newest complete images (this one among them) and removes leftovers of interrupted builds."""
    entries = [p for p in glob.glob(os.path.join(cache, "*")) if os.path.isfile(os.path.join(p, "manifest.json"))]
    entries.sort(key=lambda p: os.path.getmtime(os.path.join(p, "manifest.json")), reverse=True)
    for path in entries[KEEP:]:
        if os.path.basename(path) != key:
            shutil.rmtree(path, ignore_errors=True)
    for path in glob.glob(os.path.join(cache, ".build-*")):
        shutil.rmtree(path, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description="Build the nodeboot node image (cached).")
    parser.add_argument("--bin-dir", required=True, help="the release nodeboot and nodeboot-cni (make release)")
    parser.add_argument("--cache", default=DEFAULT_CACHE, help=f"where images are kept (default {DEFAULT_CACHE})")
    parser.add_argument("--force", action="store_true", help="rebuild even when the inputs are unchanged")
    parser.add_argument("--root-size", default="2G", help="the root file system's size (default 2G; sparse)")
    parser.add_argument("--keep-tree", action="store_true", help="keep the provisioned tree in the output (debugging)")
    opts = parser.parse_args()
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    opts.root_size = int(opts.root_size[:-1]) * units[opts.root_size[-1].upper()] \
        if opts.root_size[-1].upper() in units else int(opts.root_size)
    bin_dir = os.path.abspath(opts.bin_dir)
    missing = [b for b in BINARIES if not os.access(os.path.join(bin_dir, b), os.X_OK)]
    if missing:
        print(f"image: {', '.join(missing)} missing in {bin_dir} (make release)", file=sys.stderr)
        return 2
    for binary in BINARIES:
        # The image has no Swift runtime: a build without --static-swift-stdlib would fail validate.py's run checks.
        linked = subprocess.run(["ldd", os.path.join(bin_dir, binary)], capture_output=True, text=True).stdout
        if "libswift" in linked:
            print(f"image: {os.path.join(bin_dir, binary)} links the Swift runtime dynamically (the image has none):"
                  " build it with make release (--static-swift-stdlib)", file=sys.stderr)
            return 2
    if os.geteuid() != 0:
        print("image: needs root (mmdebstrap's root mode, chroot, loop mounts)", file=sys.stderr)
        return 2
    tools = [t for t in TOOLS if not shutil.which(t)]
    if tools:
        print(f"image: missing {', '.join(tools)} (scripts/setup.sh test installs them)", file=sys.stderr)
        return 2
    found = inputs(bin_dir)
    key = key_of(found)
    cache = os.path.abspath(opts.cache)
    os.makedirs(cache, exist_ok=True)
    target = os.path.join(cache, key)
    with open(os.path.join(cache, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; a second caller waits and then reuses it
        if os.path.isfile(os.path.join(target, "manifest.json")) and not opts.force:
            log(f"inputs unchanged (key {key}): reusing {target}")
        else:
            out = os.path.join(cache, f".build-{key}.{os.getpid()}")
            try:
                manifest = build(opts, found, key, out)
            except (Failed, OSError, subprocess.SubprocessError) as error:
                log(str(error))
                log(f"the build's logs: {out}/logs")
                return 1
            except BaseException:
                shutil.rmtree(out, ignore_errors=True)
                raise
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(target)
            os.rename(out, target)
            sizes = manifest["sizes"]
            log(f"built {target} in {manifest['seconds']['total']} s: disk.raw {sizes['disk_raw_bytes'] // 2**20} MiB"
                f" ({sizes['disk_raw_allocated_bytes'] // 2**20} MiB allocated), tree {sizes['tree_bytes'] // 2**20}"
                f" MiB; validate: {manifest['validate']}")
        point_current(cache, key)
        prune(cache, key)
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
