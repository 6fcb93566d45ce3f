#!/usr/bin/env python3
"""Offline checks of a built node image, in the spirit of amazon-eks-ami's validate.sh: what must not be baked into
an image every instance boots from, what must be, and that the boot's units are clean under the image's own systemd.

    image/validate.py --tree DIR            the provisioned tree, before it becomes a file system (image/build.py)
    image/validate.py --disk disk.raw       the built disk: its root partition mounted read-only (loop, offset)
                      [--min-free-mib N]    free space the root file system must have (disk only; default 1024)
                      [--bootstrap-sh]      /etc/eks/bootstrap.sh must be there (the repository has compat/bootstrap.sh)

Checks: no SSH host keys, authorized_keys, /etc/hostname, machine-id (empty file), D-Bus machine-id, cloud-init state
(/var/lib/cloud/{data,instance,instances,sem}) or logs, apt lists; resolv.conf only as a link into /run; nodeboot,
nodeboot-cni, the kubelet stand-in, the CNI plugins and the version files (matching the binaries); /etc/eks/nodeadm.d;
the pause image in containerd's k8s.io namespace, pinned; cloud-init's configuration as cloud-init's own YAML reader
reads it; the units enabled as intended (and those not); `systemd-analyze verify` (the image's systemd, in a chroot of
an overlay where cloud-init.target is linked into multi-user.target as its generator does at boot) of every shipped unit
and of default.target: no output at all (no ordering cycle); the kernel and an initrd with virtio_blk, virtio_net and
ext4; free space.

One line per check, then `N passed, N failed, N skipped`; exit 1 if one failed, 2 on a usage error. Needs root.
"""
import argparse
import contextlib
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(PROJECT, "scripts"))
from testkit import Report, overlay  # noqa: E402

PAUSE_IMAGE = "localhost/kubernetes/pause:latest"
SHIPPED_UNITS = ("nodeboot-config.service", "nodeboot-run.service", "kubelet.service", "nodeboot-ipamd.service",
                 "containerd.service")
ENABLED = ("nodeboot-config.service", "nodeboot-run.service", "containerd.service",
           "systemd-networkd.service", "systemd-networkd-wait-online.service", "systemd-resolved.service",
           "cloud-init-main.service", "cloud-init-local.service", "cloud-init-network.service",
           "cloud-config.service", "cloud-final.service")
# The kubelet: nodeboot-run.service starts it after the user data's scripts (image/provision.sh says why).
NOT_ENABLED = {"nodeboot-ipamd.service": ("static", "disabled"), "kubelet.service": ("disabled",),
               "apt-daily.timer": ("masked",),
               "apt-daily-upgrade.timer": ("masked",)}
CLOUD_INIT_LINK = "etc/systemd/system/multi-user.target.wants/cloud-init.target"


def run(argv, timeout=120, **kwargs):
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, **kwargs)


def chroot(root, *argv, timeout=120, env=None):
    """ARGV run inside ROOT with a clean environment (the host's chroot found on the host's PATH)."""
    return run([shutil.which("chroot") or "/usr/sbin/chroot", root, *argv], timeout=timeout,
               env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **(env or {})})


@contextlib.contextmanager
def mounted_disk(disk):
    """The disk's root partition (GPT label 'root') mounted read-only on a temporary directory."""
    table = json.loads(run(["sfdisk", "--json", disk], check=True).stdout)["partitiontable"]
    sector = table.get("sectorsize", 512)
    parts = [p for p in table["partitions"] if p.get("name") == "root"]
    if not parts:
        raise RuntimeError(f"{disk}: no partition labelled 'root' in {table['partitions']}")
    part = parts[0]
    where = tempfile.mkdtemp(prefix="nodeboot-validate-")
    result = run(["mount", "-t", "ext4", "-o", f"ro,loop,offset={part['start'] * sector},"
                  f"sizelimit={part['size'] * sector}", disk, where])
    if result.returncode != 0:
        os.rmdir(where)
        raise RuntimeError(f"mount {disk} (root partition): {result.stderr.strip()}")
    try:
        yield where
    finally:
        for _ in range(20):
            if run(["umount", where]).returncode == 0:
                break
        else:
            run(["umount", "-l", where])
        os.rmdir(where)


def absent(report, root, pattern, why):
    found = [os.path.relpath(p, root) for p in glob.glob(root + pattern)]
    report.check(f"no {pattern} ({why})", not found, "found: " + ", ".join(found))


def check_files(report, root, want_bootstrap):
    absent(report, root, "/etc/ssh/ssh_host_*", "every instance makes its own host keys")
    absent(report, root, "/root/.ssh/authorized_keys", "no baked-in login")
    absent(report, root, "/etc/hostname", "cloud-init sets the instance's name")
    for sub in ("data", "instance", "instances", "sem"):
        absent(report, root, f"/var/lib/cloud/{sub}", "cloud-init must see a new instance")
    absent(report, root, "/var/log/cloud-init*.log", "no build-time cloud-init logs")
    absent(report, root, "/var/lib/dbus/machine-id", "D-Bus takes systemd's")
    machine_id = root + "/etc/machine-id"
    size = os.path.getsize(machine_id) if os.path.exists(machine_id) else 0
    report.check("/etc/machine-id empty (systemd makes the instance's own at first boot)", size == 0, f"{size} bytes")
    resolv = root + "/etc/resolv.conf"
    report.check("/etc/resolv.conf absent or a link into /run (systemd-resolved's stub)",
                 not os.path.lexists(resolv) or (os.path.islink(resolv) and "/run/" in os.readlink(resolv)),
                 f"{resolv}: {os.readlink(resolv) if os.path.islink(resolv) else 'a regular file'}")
    lists = [n for n in os.listdir(root + "/var/lib/apt/lists") if n not in ("partial", "lock", "auxfiles")] \
        if os.path.isdir(root + "/var/lib/apt/lists") else []
    report.check("no apt lists (cleaned: nothing is installed at boot)", not lists, ", ".join(lists[:5]))

    version = chroot(root, "/usr/bin/nodeboot", "--version")
    report.check("/usr/bin/nodeboot runs (--version)", version.returncode == 0,
                 version.stdout + version.stderr, info=(version.stdout.strip().splitlines() or [""])[0])
    cni = chroot(root, "/usr/bin/nodeboot-cni", env={"CNI_COMMAND": "VERSION", "PATH": "/usr/bin:/bin"})
    report.check("/usr/bin/nodeboot-cni answers CNI_COMMAND=VERSION", cni.returncode == 0 and "cniVersion" in cni.stdout,
                 cni.stdout + cni.stderr)
    for plugin in ("loopback", "portmap"):
        path = root + f"/usr/lib/cni/{plugin}"
        report.check(f"the reference CNI plugin /usr/lib/cni/{plugin}", os.access(path, os.X_OK), path)
    kubelet = chroot(root, "/usr/bin/kubelet", "--version")
    with open(root + "/usr/bin/kubelet", errors="replace") as f:
        stand_in = "stand-in" in f.read(2000)
    report.check("/usr/bin/kubelet is the stand-in and answers --version", kubelet.returncode == 0 and stand_in,
                 kubelet.stdout + kubelet.stderr, info=kubelet.stdout.strip())
    for name, argv in (("kubelet", ["/usr/bin/kubelet", "--version"]), ("containerd", ["containerd", "--version"])):
        path = root + f"/etc/eks/{name}-version.txt"
        baked = open(path).read() if os.path.exists(path) else ""
        live = chroot(root, *argv).stdout
        report.check(f"/etc/eks/{name}-version.txt is what `{name} --version` says", bool(baked) and baked == live,
                     f"baked {baked!r}, the binary says {live!r}", info=baked.strip())
    link = root + "/etc/systemd/network/10-nodeboot-pod-veth.link"
    text = open(link).read() if os.path.isfile(link) else ""
    report.check("systemd-udevd leaves pod veths' MACs alone (10-nodeboot-pod-veth.link: MACAddressPolicy=none for"
                 " eni* veths, before Debian's 99-default.link)",
                 "MACAddressPolicy=none" in text and "OriginalName=eni*" in text, f"{link}: {text or 'missing'}")
    sshd = os.path.exists(root + "/usr/sbin/sshd")
    ssh_cfg = os.path.exists(root + "/etc/cloud/cloud.cfg.d/91-nodeboot-ssh.cfg")
    report.check("SSH: no server, or a server with cloud-init's ssh modules (host keys made per instance)",
                 sshd == ssh_cfg, f"sshd {'present' if sshd else 'absent'}, 91-nodeboot-ssh.cfg "
                 f"{'present' if ssh_cfg else 'absent'}", info="no server" if not sshd else "server, modules on")
    report.check("/etc/eks/nodeadm.d/ exists (user scripts drop NodeConfig files there)",
                 os.path.isdir(root + "/etc/eks/nodeadm.d"))
    if want_bootstrap:
        report.check("/etc/eks/bootstrap.sh (compat/bootstrap.sh) installed, executable",
                     os.access(root + "/etc/eks/bootstrap.sh", os.X_OK))
    pause = root + "/etc/eks/pause.tar"
    report.check("/etc/eks/pause.tar (the pause image, built offline from catatonit)", os.path.isfile(pause))
    # The bolt database stores keys and values as plain bytes: the image's name in the k8s.io namespace's bucket and
    # its labels are readable without starting containerd.
    try:
        with open(root + "/var/lib/containerd/io.containerd.metadata.v1.bolt/meta.db", "rb") as f:
            meta = f.read()
    except OSError as error:
        meta, problem = b"", str(error)
    else:
        problem = "the name or the pinned label is not in containerd's metadata"
    report.check(f"{PAUSE_IMAGE} imported into containerd's k8s.io namespace and pinned",
                 PAUSE_IMAGE.encode() in meta and b"k8s.io" in meta and b"io.cri-containerd.pinned" in meta, problem)
    config = chroot(root, "python3", "-c", "import json, yaml, glob\n"
                    "c = yaml.safe_load(open('/etc/cloud/cloud.cfg'))\n"
                    "for p in sorted(glob.glob('/etc/cloud/cloud.cfg.d/*.cfg')): c.update(yaml.safe_load(open(p)) or {})\n"
                    "print(json.dumps({k: c.get(k) for k in ('datasource_list', 'package_update', 'package_upgrade',"
                    " 'locale', 'cloud_config_modules', 'cloud_final_modules')}))")
    try:
        cfg = json.loads(config.stdout)
    except ValueError:
        cfg = {}
    report.check("cloud-init config: datasources [Ec2, NoCloud, None], no package update/upgrade, no locale,"
                 " no locale module", cfg.get("datasource_list") == ["Ec2", "NoCloud", "None"]
                 and cfg.get("package_update") is False and cfg.get("package_upgrade") is False
                 and cfg.get("locale") is False and "locale" not in (cfg.get("cloud_config_modules") or ["locale"]),
                 config.stdout + config.stderr)


def check_units(report, root):
    states = {}
    for name in list(ENABLED) + list(NOT_ENABLED):
        result = run(["systemctl", f"--root={root}", "is-enabled", name])
        states[name] = result.stdout.strip() or result.stderr.strip()
    wrong = [f"{n}: {states[n]}" for n in ENABLED if states[n] not in ("enabled", "enabled-runtime")]
    report.check(f"enabled: {', '.join(ENABLED)}", not wrong, "\n".join(wrong))
    wrong = [f"{n}: {states[n]}" for n, ok in NOT_ENABLED.items() if states[n] not in ok]
    report.check("not enabled: nodeboot-ipamd.service and kubelet.service (init starts them), apt's timers (masked)",
                 not wrong,
                 "\n".join(wrong))
    with tempfile.TemporaryDirectory(prefix="nodeboot-validate-verify-") as scratch:
        with overlay(root, scratch) as merged:
            link = os.path.join(merged, CLOUD_INIT_LINK)
            os.makedirs(os.path.dirname(link), exist_ok=True)
            if not os.path.lexists(link):
                os.symlink("/usr/lib/systemd/system/cloud-init.target", link)
            version = chroot(merged, "systemctl", "--version").stdout.split("\n")[0]
            for name in SHIPPED_UNITS + ("default.target",):
                result = chroot(merged, "systemd-analyze", "verify", "--man=no", name)
                output = (result.stdout + result.stderr).strip()
                report.check(f"the image's systemd-analyze verify {name}" + (
                    f" ({version}; cloud-init.target linked as its generator does): no ordering cycle"
                    if name == "default.target" else ""), result.returncode == 0 and not output,
                    f"exit {result.returncode}\n{output}")


def check_boot(report, root, disk_free, min_free_mib):
    kernels = sorted(glob.glob(root + "/boot/vmlinuz-*"))
    initrds = sorted(glob.glob(root + "/boot/initrd.img-*"))
    report.check("a kernel and its initrd in /boot", bool(kernels) and bool(initrds), f"{kernels} {initrds}")
    if kernels and initrds:
        version = os.path.basename(kernels[-1])[len("vmlinuz-"):]
        listing = chroot(root, "lsinitramfs", f"/boot/initrd.img-{version}", timeout=300).stdout
        with open(root + f"/boot/config-{version}") as f:
            config = f.read()
        missing = []
        for module, option in (("virtio_blk", "VIRTIO_BLK"), ("virtio_net", "VIRTIO_NET"), ("ext4", "EXT4_FS")):
            built_in = re.search(rf"^CONFIG_{option}=y$", config, re.M)
            if not built_in and not re.search(rf"/{module}\.ko", listing):
                missing.append(module)
        report.check("the initrd can mount a virtio disk's ext4 root and bring up a virtio NIC (virtio_blk,"
                     " virtio_net, ext4 built in or in the initrd)", not missing, f"missing: {missing}",
                     info=version)
    if disk_free is not None:
        report.check(f"at least {min_free_mib} MiB free on the root file system", disk_free >= min_free_mib * 2**20,
                     f"{disk_free // 2**20} MiB free", info=f"{disk_free // 2**20} MiB free")


def validate(root, report, want_bootstrap, disk_free=None, min_free_mib=1024):
    check_files(report, root, want_bootstrap)
    check_units(report, root)
    check_boot(report, root, disk_free, min_free_mib)


def main():
    parser = argparse.ArgumentParser(description="Offline checks of a built node image.")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--tree", help="the provisioned tree")
    what.add_argument("--disk", help="the built disk image (raw GPT, root partition labelled 'root')")
    parser.add_argument("--min-free-mib", type=int, default=1024)
    parser.add_argument("--bootstrap-sh", action="store_true", help="/etc/eks/bootstrap.sh must be installed")
    opts = parser.parse_args()
    if os.geteuid() != 0:
        print("validate: needs root (chroot, overlay and loop mounts)", file=sys.stderr)
        return 2
    report = Report()
    try:
        if opts.tree:
            validate(os.path.abspath(opts.tree), report, opts.bootstrap_sh)
        else:
            with mounted_disk(os.path.abspath(opts.disk)) as root:
                stat = os.statvfs(root)
                validate(root, report, opts.bootstrap_sh, stat.f_bavail * stat.f_frsize, opts.min_free_mib)
    except (OSError, RuntimeError, ValueError, subprocess.SubprocessError) as error:
        report.check("validate", False, f"{type(error).__name__}: {error}")
    return report.summary()


if __name__ == "__main__":
    sys.exit(main())
