#!/usr/bin/env python3
"""The node image and its cloud-init integration, offline (issue 14): what can be checked without booting it. The VM
test (scripts/vm-test.py) boots it.

    scripts/image-test.py --bin-dir DIR [--swift SWIFT] [--release-dir DIR] [--no-build]

1. cloud-init/examples/: each user data served by the testbed as the instance's user data (DIR's nodeboot-testbed) and
   read by DIR's nodeboot as the config unit reads it: `config check` (imds://user-data) passes for the NodeConfig
   forms; the MIME example's script part is valid bash and the NodeConfig it drops into /etc/eks/nodeadm.d/ passes
   together with the user data (the run unit's sources); the legacy AL2 script is valid bash, its bootstrap.sh
   arguments pass `nodeboot bootstrap-sh --dry-run`, and `config check` says the user data has no NodeConfig.
2. image/pause.py is deterministic (the same bytes twice: the image's cache key does not move for nothing).
3. The Packer template: `packer validate` (offline: it checks the syntax, the builder's settings and that every
   file it uploads exists; skipped when packer is not installed). Debian 12's packer 1.6.6 predates the
   metadata_options block (IMDSv2 required): a copy without it is validated, and the check says so.
4. As root, with mmdebstrap and systemd-repart: `make release` (incremental), then `image/build.py` (cached in
   /var/cache/nodeboot/image: built when an input changed), its output's files, a second call reusing it, the
   release binaries in the manifest's inputs, and `image/validate.py --disk` on the result.

One line per check, then `N passed, N failed, N skipped`; exit 1 if one failed. Without root the image part is
`skip`ped with the reason.
"""
import argparse
import base64
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testkit import Report, start_testbed, stop_process, write  # noqa: E402

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(PROJECT, "cloud-init", "examples")
AEMM = os.path.join(PROJECT, "Sources", "Testbed", "Resources", "aemm-default-config.json")
IMAGE_FILES = ("disk.raw", "vmlinuz", "initrd.img", "cmdline", "manifest.json")
RELEASE_FLAGS = ["-c", "release", "--static-swift-stdlib", "-Xswiftc", "-gline-tables-only"]


def run(argv, timeout=120, env=None, cwd=PROJECT):
    start = time.monotonic()
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                            env=env, cwd=cwd)
    return result.returncode, result.stdout, result.stderr, time.monotonic() - start


def tail(text, lines=25):
    return "\n".join(text.strip().splitlines()[-lines:])


def serve(bin_dir, user_data, scratch):
    """nodeboot-testbed serving USER_DATA (bytes) as the instance's user data: (process, environment)."""
    with open(AEMM) as f:
        instance = json.load(f)
    instance.setdefault("userdata", {}).setdefault("values", {})["userdata"] = base64.b64encode(user_data).decode()
    config = os.path.join(scratch, "testbed.json")
    write(config, json.dumps({"instance": instance}))
    proc, printed = start_testbed(os.path.join(bin_dir, "nodeboot-testbed"), config, scratch)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(printed["env"])
    return proc, env


def mime_parts(text):
    """(content type, body) of each part of a multipart/mixed document (the examples' simple form)."""
    boundary = re.search(r'boundary="?([^";\n]+)"?', text).group(1)
    parts = []
    for chunk in text.split(f"--{boundary}")[1:]:
        if chunk.startswith("--"):
            break
        head, _, body = chunk.lstrip("\n").partition("\n\n")
        kind = re.search(r"(?im)^Content-Type:\s*([^;\s]+)", head)
        parts.append((kind.group(1).lower() if kind else "", body))
    return parts


def check_examples(report, bin_dir, scratch):
    nodeboot = os.path.join(bin_dir, "nodeboot")
    names = sorted(os.listdir(EXAMPLES))
    report.check("cloud-init/examples/ holds the four forms (plain, minimal, MIME with a script, legacy script)",
                 {"nodeconfig.yaml", "minimal.yaml", "mime-multipart.txt", "legacy-bootstrap.sh"} <= set(names),
                 f"found: {names}")
    for name in names:
        path = os.path.join(EXAMPLES, name)
        with open(path, "rb") as f:
            data = f.read()
        where = tempfile.mkdtemp(prefix="example-", dir=scratch)
        proc, env = serve(bin_dir, data, where)
        try:
            status, out, err, _ = run([nodeboot, "config", "check", "-c", "imds://user-data", "--imds-timeout", "10"],
                                      env=env)
            text = data.decode()
            if name == "legacy-bootstrap.sh":
                report.check(f"{name}: config check says the user data has no NodeConfig (exit 2); the script does"
                             " the work", status == 2 and "no NodeConfig" in out + err, f"exit {status}\n{out}{err}")
                bash = run(["bash", "-n", path])
                report.check(f"{name}: valid bash", bash[0] == 0, bash[2])
                command = re.search(r"(?ms)^/etc/eks/bootstrap\.sh (.*?)(?<!\\)$", text)
                args = shlex.split(command.group(1).replace("\\\n", " ")) if command else []
                helped = run([nodeboot, "bootstrap-sh", "--help"])
                if helped[0] != 0:
                    report.skip(f"{name}: its bootstrap.sh arguments", "this nodeboot has no bootstrap-sh command")
                    continue
                dry = run([nodeboot, "bootstrap-sh", "--dry-run", *args], env=env)
                report.check(f"{name}: `nodeboot bootstrap-sh --dry-run {' '.join(args[:1])} …` (what"
                             " /etc/eks/bootstrap.sh runs) accepts its arguments", bool(args) and dry[0] == 0,
                             f"arguments {args}\nexit {dry[0]}\n{dry[1]}{dry[2]}")
                continue
            report.check(f"{name}: served as user data, `nodeboot config check` (the config unit's source) passes",
                         status == 0, f"exit {status}\n{out}{err}")
            if name != "mime-multipart.txt":
                continue
            parts = mime_parts(text)
            kinds = [kind for kind, _ in parts]
            report.check(f"{name}: a NodeConfig part and a shell script part", kinds == ["application/node.eks.aws",
                                                                                      "text/x-shellscript"], f"{kinds}")
            script = next((body for kind, body in parts if kind == "text/x-shellscript"), "")
            write(os.path.join(where, "script.sh"), script)
            bash = run(["bash", "-n", os.path.join(where, "script.sh")])
            report.check(f"{name}: the script is valid bash", bash[0] == 0 and script.startswith("#!"), bash[2])
            dropped = re.search(r"(?s)cat > (/etc/eks/nodeadm\.d/\S+) <<'YAML'\n(.*?)\nYAML\n", script)
            edits = "/etc/kubernetes/kubelet/config.json" in script
            report.check(f"{name}: the script edits a generated file (the kubelet's config.json) and drops a NodeConfig"
                         " into /etc/eks/nodeadm.d/", bool(dropped) and edits, script[:400])
            if dropped:
                drop_in = os.path.join(where, "nodeadm.d")
                write(os.path.join(drop_in, os.path.basename(dropped.group(1))), dropped.group(2) + "\n")
                status, out, err, _ = run([nodeboot, "config", "check", "-c", "imds://user-data", "-c",
                                           f"file://{drop_in}/", "--imds-timeout", "10"], env=env)
                report.check(f"{name}: the user data with the dropped NodeConfig (the run unit's sources) passes"
                             " config check", status == 0, f"exit {status}\n{out}{err}")
        finally:
            stop_process(proc)


def check_pause(report, scratch):
    import importlib.util
    spec = importlib.util.spec_from_file_location("pause", os.path.join(PROJECT, "image", "pause.py"))
    pause = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pause)
    with open("/bin/true", "rb") as f:
        binary = f.read()
    first, digest = pause.build(binary)
    second, _ = pause.build(binary)
    import io
    import tarfile
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        index = json.load(tar.extractfile("index.json"))
        names = tar.getnames()
    annotations = index["manifests"][0]["annotations"]
    report.check("image/pause.py: the same catatonit gives the same tarball (deterministic); an OCI layout named"
                 " localhost/kubernetes/pause:latest", first == second and "oci-layout" in names
                 and annotations.get("io.containerd.image.name") == "localhost/kubernetes/pause:latest",
                 f"names {names}, annotations {annotations}", info=digest[:19])


def check_packer(report, scratch):
    """`packer validate` of the template (it also checks that every uploaded file exists). Debian 12's packer 1.6.6
    has no metadata_options block (the IMDSv2 requirement; packer >= 1.7): it validates a copy without that block,
    with the repository's path for path.root's, and the check says so."""
    template = os.path.join(PROJECT, "image", "packer", "nodeboot.pkr.hcl")
    if not shutil.which("packer"):
        report.skip("packer validate image/packer/nodeboot.pkr.hcl", "packer is not installed")
        return
    env = {**os.environ, "CHECKPOINT_DISABLE": "1"}
    version = run(["packer", "version"], env=env)[1].strip()
    match = re.search(r"v?(\d+)\.(\d+)", version)
    old = bool(match) and (int(match.group(1)), int(match.group(2))) < (1, 7)
    with open(template) as f:
        text = f.read()
    note = ""
    if old:
        stripped = re.sub(r"(?ms)^  metadata_options \{.*?^  \}\n", "", text)
        if stripped == text or "http_tokens" in stripped:
            report.check("packer validate: the template's metadata_options block (IMDSv2 required)", False,
                         "no metadata_options block with http_tokens to strip for packer < 1.7")
            return
        template = os.path.join(scratch, "nodeboot.pkr.hcl")
        write(template, stripped.replace("${path.root}/../..", PROJECT))
        note = f" ({version}: without metadata_options, which it predates)"
    if not os.path.isfile(os.path.join(PROJECT, ".build", "release", "nodeboot")):
        report.skip(f"packer validate image/packer/nodeboot.pkr.hcl{note}", "no release build to upload (make release)")
        return
    status, out, err, seconds = run(["packer", "validate", template], env=env)
    report.check(f"packer validate image/packer/nodeboot.pkr.hcl, offline{note}", status == 0,
                 f"exit {status}\n{out}{err}", info=f"{seconds:.1f} s")


def check_image(report, opts):
    if os.geteuid() != 0:
        report.skip("the image (make release, image/build.py, image/validate.py --disk)",
                    "needs root: mmdebstrap's root mode, chroot, loop mounts")
        return
    missing = [t for t in ("mmdebstrap", "systemd-repart", "mkfs.ext4", "sfdisk") if not shutil.which(t)]
    if missing:
        report.skip("the image", f"{', '.join(missing)} not installed (scripts/setup.sh test)")
        return
    release = opts.release_dir
    if not opts.no_build:
        status, out, err, seconds = run(["make", "-s", "release", f"SWIFT={opts.swift}"], timeout=3600)
        if not report.check("make release (the image's static-runtime nodeboot and nodeboot-cni)", status == 0,
                            f"exit {status}\n{tail(out + err)}", info=f"{seconds:.0f} s"):
            return
    if not release:
        release = run([opts.swift, "build", *RELEASE_FLAGS, "--show-bin-path"])[1].strip()
    build = [sys.executable, os.path.join(PROJECT, "image", "build.py"), "--bin-dir", release]
    status, out, err, seconds = run(build, timeout=3600)
    output = out.strip().splitlines()[-1] if out.strip() else ""
    cached = "inputs unchanged" in err
    if not report.check("image/build.py: the image built (or reused)", status == 0 and os.path.isdir(output),
                        f"exit {status}\n{tail(err, 40)}",
                        info=f"{seconds:.1f} s, {'reused' if cached else 'built'}: {output}"):
        return
    for line in err.splitlines():
        if line.startswith("image: built "):
            report.note(line[len("image: "):])
    missing = [n for n in IMAGE_FILES if not os.path.isfile(os.path.join(output, n))]
    current = os.path.realpath(os.path.join(os.path.dirname(output), "current"))
    report.check(f"the output holds {', '.join(IMAGE_FILES)}; current points at it", not missing and current == output,
                 f"missing {missing}; current → {current}")
    with open(os.path.join(output, "manifest.json")) as f:
        manifest = json.load(f)
    with open(os.path.join(output, "cmdline")) as f:
        cmdline = f.read().strip()
    import hashlib
    digests = {}
    for name in ("nodeboot", "nodeboot-cni"):
        with open(os.path.join(release, name), "rb") as f:
            digests[f"bin/{name}"] = hashlib.sha256(f.read()).hexdigest()
    report.check("manifest.json: the release binaries as inputs, package versions, sizes, build seconds; cmdline",
                 all(manifest.get("inputs", {}).get(k) == v for k, v in digests.items())
                 and manifest.get("packages", {}).get("containerd") and manifest.get("sizes")
                 and manifest.get("seconds") and "root=PARTLABEL=root" in cmdline,
                 json.dumps({k: manifest.get(k) for k in ("inputs", "packages", "sizes", "seconds")})[:1500],
                 info=f"containerd {manifest.get('packages', {}).get('containerd')}, kernel {manifest.get('kernel')}")
    status, out, err, seconds = run(build, timeout=600)
    report.check("a second image/build.py with the same inputs reuses the image (nothing rebuilt)",
                 status == 0 and out.strip().splitlines()[-1:] == [output] and "inputs unchanged" in err,
                 f"exit {status}\n{tail(out + err)}", info=f"{seconds:.1f} s")
    status, out, err, seconds = run([sys.executable, os.path.join(PROJECT, "image", "validate.py"), "--disk",
                                     os.path.join(output, "disk.raw")]
                                    + (["--bootstrap-sh"] if "compat/bootstrap.sh" in manifest["inputs"] else []),
                                    timeout=600)
    closing = (out.strip().splitlines() or [""])[-1]
    failed = [line for line in out.splitlines() if line.startswith("FAIL")]
    report.check("image/validate.py --disk on the built disk (read-only loop mount): every check passes",
                 status == 0 and " 0 failed" in closing, f"exit {status}\n{tail(out, 60)}\n{err}",
                 info=f"{closing}; {seconds:.1f} s")
    for line in failed:
        report.note(line)
    check_validate_fails(report, os.path.join(output, "disk.raw"))


def check_validate_fails(report, disk):
    """validate.py must be able to fail: on an overlay of the disk's root (the disk is not touched) with an
    /etc/hostname baked in and nodeboot-config.service given its default dependencies back (the ordering cycle through
    sysinit.target), it must report exactly those."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("validate", os.path.join(PROJECT, "image", "validate.py"))
    validate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(validate)
    from testkit import overlay
    scratch = tempfile.mkdtemp(prefix="nodeboot-image-broken-")
    try:
        with validate.mounted_disk(disk) as lower, overlay(lower, scratch) as root:
            write(root + "/etc/hostname", "baked-in\n")
            unit = root + "/etc/systemd/system/nodeboot-config.service"
            with open(unit) as f:
                text = f.read()
            write(unit, text.replace("DefaultDependencies=no\n", ""))
            status, out, err, _ = run([sys.executable, os.path.join(PROJECT, "image", "validate.py"), "--tree", root],
                                      timeout=600)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    failed = [line for line in out.splitlines() if line.startswith("FAIL")]
    expected = ["/etc/hostname", "verify default.target"]
    report.check("self-check: validate.py on a broken copy (an /etc/hostname, the config unit with default"
                 " dependencies) fails with exactly those", status == 1 and len(failed) == len(expected)
                 and all(any(e in line for line in failed) for e in expected) and "ordering cycle" in out,
                 f"exit {status}\n{tail(out, 40)}\n{err}", info=f"{len(failed)} FAIL lines")


def main():
    parser = argparse.ArgumentParser(description="The node image and its cloud-init integration, offline.")
    parser.add_argument("--bin-dir", required=True, help="nodeboot and nodeboot-testbed (the debug build)")
    parser.add_argument("--swift", default="swift")
    parser.add_argument("--release-dir", help="the release binaries (default: swift build -c release's bin path)")
    parser.add_argument("--no-build", action="store_true", help="do not run make release first")
    opts = parser.parse_args()
    bin_dir = os.path.abspath(opts.bin_dir)
    for binary in ("nodeboot", "nodeboot-testbed"):
        if not os.access(os.path.join(bin_dir, binary), os.X_OK):
            print(f"image-test: {os.path.join(bin_dir, binary)} is missing (swift build)", file=sys.stderr)
            return 2
    report = Report()
    scratch = tempfile.mkdtemp(prefix="nodeboot-image-test-")
    try:
        check_examples(report, bin_dir, scratch)
        check_pause(report, scratch)
        check_packer(report, scratch)
        check_image(report, opts)
    except (OSError, RuntimeError, ValueError, subprocess.SubprocessError) as error:
        report.check("image-test", False, f"{type(error).__name__}: {error}")
    except KeyboardInterrupt:
        print("image-test: interrupted", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return report.summary()


if __name__ == "__main__":
    sys.exit(main())
