"""What scripts/conformance.py and scripts/bad-input.py share: node roots as a machine image
bakes them, file helpers, and running the agent under a time limit in its own process group."""
import contextlib
import errno
import os
import shutil
import signal
import stat
import subprocess
import sys
import time

CONTAINERD_COMMIT = "05044ec0a9a75232cad458027ca83437aae3f4da"


def writable_dirs(path):
    for directory, _, _ in os.walk(path):
        os.chmod(directory, 0o755)


def copy_tree(src, dst):
    """Copy without the shared data's read-only modes, so the copy can be written and removed."""
    shutil.copytree(src, dst, copy_function=shutil.copyfile, dirs_exist_ok=True)
    writable_dirs(dst)


def write(path, data, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    os.chmod(path, mode)


def tree_state(top, skip=(), mtimes=False, top_entry=False):
    """{path relative to top: (kind, mode, mtime ns or None, bytes or link target or None)} of everything under top,
    kind "file", "dir" or "link", mode the permission bits (0 for a link). `skip`: relative paths left out;
    `mtimes`: record modification times (a file rewritten with the same bytes then differs); `top_entry`: top itself
    as ".". What the runners compare a node root by before and after a run."""
    def entry(path):
        st = os.lstat(path)
        mtime = st.st_mtime_ns if mtimes else None
        if stat.S_ISLNK(st.st_mode):
            return ("link", 0, mtime, os.readlink(path))
        if stat.S_ISDIR(st.st_mode):
            return ("dir", stat.S_IMODE(st.st_mode), mtime, None)
        with open(path, "rb") as f:
            return ("file", stat.S_IMODE(st.st_mode), mtime, f.read())

    state = {".": entry(top)} if top_entry else {}
    for directory, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, top)
            if relative not in skip:
                state[relative] = entry(path)
    return state


def prepare_root(root, infra, containerd, kubelet=None):
    """The node files nodeadm's cases assume (cases.json `environment`): containerd version file,
    the ECR credential provider, the 2-CPU sysfs tree; the kubelet version file when given."""
    if kubelet:
        write(root + "/etc/eks/kubelet-version.txt", f"Kubernetes v{kubelet}\n")
    write(root + "/etc/eks/containerd-version.txt",
          f"containerd github.com/containerd/containerd v{containerd} {CONTAINERD_COMMIT}\n")
    write(root + "/etc/eks/image-credential-provider/ecr-credential-provider", b"")
    copy_tree(os.path.join(infra, "cpu"), root + "/sys/devices/system/cpu")
    copy_tree(os.path.join(infra, "node"), root + "/sys/devices/system/node")


def popen(argv, **kwargs):
    """subprocess.Popen in a new session, waiting up to 60 s while a binary is being rebuilt (ETXTBSY)."""
    for attempt in range(120):
        try:
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True, **kwargs)
        except OSError as error:
            if error.errno != errno.ETXTBSY or attempt == 119:
                raise
            time.sleep(0.5)


def run_agent(argv, cwd, env, timeout):
    """(status, or None on timeout; stdout; stderr). The agent runs in its own process group."""
    proc = popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")
    except BaseException as error:  # timeout, Ctrl-C, SIGTERM: kill the agent and anything it started
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        if isinstance(error, subprocess.TimeoutExpired):
            return None, out.decode(errors="replace"), err.decode(errors="replace")
        raise


def stop_process(proc, timeout=5):
    """SIGTERM to the process (its group when it leads one), up to `timeout` s, then SIGKILL."""
    if proc.poll() is not None:
        return
    group = os.getpgid(proc.pid) == proc.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM) if group else proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL) if group else proc.kill()
        proc.wait()


def start_testbed(binary, config, directory, timeout=20):
    """`nodeboot-testbed serve --config CONFIG`, its stderr in DIRECTORY/testbed.log and the API server's CA in
    DIRECTORY/kube-ca.crt. Returns (process, printed): `printed` maps the lines it prints (`imds`, `aws`, `kube`,
    `kube-ca`) to their values and `env` to the variables it exports. Raises RuntimeError with the log's tail when it
    does not print them within `timeout` s. Stop it with stop_process."""
    import threading
    log_path = os.path.join(directory, "testbed.log")
    with open(log_path, "wb") as log:
        proc = popen([binary, "serve", "--config", config, "--kube-ca-out", os.path.join(directory, "kube-ca.crt")],
                     stdout=subprocess.PIPE, stderr=log)
    printed, ready = {"env": {}}, threading.Event()

    def drain():  # reads stdout to EOF, so the testbed never blocks on a full pipe
        for raw in proc.stdout:
            line = raw.decode(errors="replace").strip()
            if line.startswith("export ") and "=" in line:
                name, _, value = line[len("export "):].partition("=")
                printed["env"][name] = value
            else:
                name, _, value = line.partition(": ")
                printed[name] = value
            if all(k in printed for k in ("imds", "aws", "kube", "kube-ca")) and \
                    "AWS_ENDPOINT_URL" in printed["env"] and "AWS_EC2_METADATA_SERVICE_ENDPOINT" in printed["env"]:
                ready.set()
        ready.set()
    threading.Thread(target=drain, daemon=True).start()
    if not ready.wait(timeout) or "AWS_ENDPOINT_URL" not in printed["env"]:
        stop_process(proc)
        with open(log_path, errors="replace") as f:
            raise RuntimeError(f"nodeboot-testbed did not print its endpoints within {timeout} s"
                               f" (config {config}); its log ends:\n{f.read()[-1500:]}")
    return proc, printed


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on at this moment."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_ca(directory, name):
    """A self-signed P-256 CA (openssl) in DIRECTORY: (certificate path, key path); NAME is its common name."""
    key, cert = os.path.join(directory, f"{name}.key"), os.path.join(directory, f"{name}.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={name}",
                    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
                   check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
    return cert, key


@contextlib.contextmanager
def overlay(lower, scratch):
    """An overlayfs with `lower` as its read-only layer (never written) and its upper and work directories in
    `scratch`; yields the merged directory, unmounted on exit (lazily if something still holds it)."""
    merged = os.path.join(scratch, "merged")
    for name in ("upper", "work", "merged"):
        os.makedirs(os.path.join(scratch, name), exist_ok=True)
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={lower},upperdir={scratch}/upper,workdir={scratch}/work", merged],
                   check=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    try:
        yield merged
    finally:
        for _ in range(20):
            if subprocess.run(["umount", merged], capture_output=True, timeout=30).returncode == 0:
                break
            time.sleep(0.25)
        else:
            subprocess.run(["umount", "-l", merged], capture_output=True, timeout=30)


def systemd_tree(project, timeout=900):
    """The Debian tree with systemd that scripts/systemd-tree.sh builds (and caches): (path, None), or (None, why
    not) when it cannot be had here (not root, no debootstrap, no mirror). The script's progress goes to stderr."""
    import sys
    import threading
    if os.geteuid() != 0:
        return None, "needs root"
    proc = popen([os.path.join(project, "scripts", "systemd-tree.sh")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGTERM))
    timer.start()
    try:
        last = ""
        for raw in proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            sys.stderr.write(line + "\n")
            last = line or last
        out = proc.stdout.read().decode(errors="replace").strip().splitlines()
        status = proc.wait()
    except BaseException:
        stop_process(proc)
        raise
    finally:
        timer.cancel()
    if status != 0 or not out or not os.path.isdir(out[-1]):
        if status < 0:
            last = f"scripts/systemd-tree.sh stopped after {timeout} s"
        return None, f"the tree cannot be built here: {last or f'exit {status}'}"
    return out[-1], None


class Report:
    """A runner's checks as make test reads them: an `ok`/`FAIL`/`skip` line each, the tail of a
    failure's detail below it, and the closing `N passed, N failed, N skipped` line."""

    def __init__(self, detail_lines=40, note_prefix=""):
        self.counts = {"passed": 0, "failed": 0, "skipped": 0}
        self.detail_lines = detail_lines
        self.note_prefix = note_prefix

    def check(self, name, ok, detail="", info=""):
        self.counts["passed" if ok else "failed"] += 1
        head = f"{'ok' if ok else 'FAIL':<5} {name}"
        if ok and info:
            head += f" ({info})"
        print(head)
        if not ok:
            for line in str(detail or "").rstrip().splitlines()[-self.detail_lines:]:
                print(f"      {line[:400]}")
        sys.stdout.flush()
        return ok

    def skip(self, name, reason):
        self.counts["skipped"] += 1
        print(f"{'skip':<5} {name} ({reason})")
        sys.stdout.flush()

    def skip_runner(self, runner, reason):
        """The whole runner cannot run here: `RUNNER: skipped (REASON)` (test-all.py reads it), counted as one skip;
        returns the closing line's exit status."""
        print(f"{runner}: skipped ({reason})")
        self.counts["skipped"] += 1
        return self.summary()

    def note(self, text):
        print(f"      {self.note_prefix}{text}")
        sys.stdout.flush()

    def summary(self):
        print(f"{self.counts['passed']} passed, {self.counts['failed']} failed, {self.counts['skipped']} skipped")
        return 1 if self.counts["failed"] else 0


def ipamd_request(socket_path, request, timeout=5):
    """One request over ipamd's socket (docs/ipamd.md §7: one JSON line each way, a connection each,
    as nodeboot-cni does); the parsed reply. `v` is added when the request has none."""
    import json
    import socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(socket_path)
        conn.sendall(json.dumps({"v": "1.0", **request}, separators=(",", ":")).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)


def ipamd_status(socket_path):
    """ipamd's status object, or raises (no socket, no answer, a refusal)."""
    reply = ipamd_request(socket_path, {"op": "status"})
    if not reply.get("ok"):
        raise RuntimeError(f"ipamd refused status: {reply}")
    return reply["status"]

def setup_local_disks_stand_in(md_node, log):
    """/usr/bin/setup-local-disks for a test node (amazon-eks-ami's script; nodeboot's own image and Debian have none):
    a shell script that keeps to that script's contract for raid0. Its arguments are appended to LOG; the array is
    made on MD_NODE. The contract, in the script's own words: the instance store
    disks are the devices /dev/disk/by-id/*NVMe_Instance_Storage_* link to (the names udev gives NVMe disks whose model is
    "Amazon EC2 NVMe Instance Storage"); one md RAID0 array named kubernetes (created unless mdadm already knows one),
    formatted unless it holds a filesystem, mounted at DIR/0 by a .mount unit; then each of /var/lib/kubelet,
    /var/lib/containerd, /var/lib/soci-snapshotter-grpc and /var/log/pods (less the --no-bind-* ones) whose .mount unit
    systemd does not call active: the daemon that uses it stopped, its content copied to DIR/0/<name>, a bind-mount unit
    enabled and started, the daemon started again. That is-active test is what lets an EBS volume nodeboot mounted first
    keep its directory. Differences: the array is created on MD_NODE (in systemd-test the md node bound into the container;
    the script asks for /dev/md/kubernetes and udev makes the link), ext4 where the tree has no mkfs.xfs, and it waits
    for the array's /dev/disk/by-uuid link (systemd waits for the device where udev runs; systemd-test's udev stand-in
    makes it; where udev runs it waits for udev's queue instead).
    """
    return f"""#!/bin/sh
# setup-local-disks stand-in installed by scripts/systemd-test.py (scenario k) or scripts/vm-test.py (storage boot):
# testkit.setup_local_disks_stand_in says what it does.
set -eu
echo "$*" >> {log}
strategy=""; dir=/mnt/k8s-disks
binds="/var/lib/kubelet /var/lib/containerd /var/lib/soci-snapshotter-grpc /var/log/pods"
drop() {{ binds=$(for b in $binds; do [ "$b" = "$1" ] || printf '%s ' "$b"; done); }}
while [ $# -gt 0 ]; do
  case "$1" in
    -d|--dir) dir=$2; shift ;;
    --no-bind-containerd) drop /var/lib/containerd ;;
    --no-bind-pods-logs) drop /var/log/pods ;;
    --no-bind-soci) drop /var/lib/soci-snapshotter-grpc ;;
    *) strategy=$1 ;;
  esac
  shift
done
[ "$strategy" = raid0 ] || {{ echo "the stand-in does raid0 only, not '$strategy'" >&2; exit 1; }}
# Where udev runs (a VM), its queue first: the disks' by-id links, and on a reboot mdadm's incremental assembly of the
# array (a half-assembled one holds its members: a create would find them busy). No udev: nothing to wait for.
settle() {{ udevadm settle --timeout=30 >/dev/null 2>&1 || true; }}
settle
disks=$(for link in /dev/disk/by-id/*NVMe_Instance_Storage_*; do [ -L "$link" ] && readlink -f "$link"; done | sort -u)
[ -n "$disks" ] || {{ echo "no NVMe instance storage disks found"; exit 0; }}
md={md_node}
echo "arrays: $(mdadm --detail --scan 2>&1 | tr '\n' ' ')| mdstat: $(grep '^md' /proc/mdstat | tr '\n' ' ')"
# mdadm 4.2 prints name=HOST:kubernetes; 4.4 (trixie) only the device, /dev/md/HOST:kubernetes (found in vm-test).
if ! mdadm --detail --scan 2>/dev/null | grep -Eq '(name=|/dev/md/)([^ :]*:)?kubernetes( |$)'; then
  mdadm --create "$md" --run --force --level=0 --name=kubernetes --raid-devices=$(echo $disks | wc -w) $disks
  settle
fi
fs=$(blkid -o value -s TYPE "$md" || true)
if [ -z "$fs" ]; then
  if command -v mkfs.xfs >/dev/null; then fs=xfs; mkfs.xfs -q "$md"; else fs=ext4; mkfs.ext4 -q "$md"; fi
fi
uuid=$(blkid -o value -s UUID "$md")
# udev makes the array's by-uuid link from a change event once it holds a filesystem; ask for one where udev runs.
udevadm trigger --action=change "$md" >/dev/null 2>&1 || true
settle
i=0; while [ ! -e "/dev/disk/by-uuid/$uuid" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
array="$dir/0"
mkdir -p "$array"
unit=$(systemd-escape --path --suffix=mount "$array")
printf '[Unit]\\nDescription=instance store RAID0 (stand-in)\\n[Mount]\\nWhat=UUID=%s\\nWhere=%s\\nType=%s\\n' \\
  "$uuid" "$array" "$fs" > "/etc/systemd/system/$unit"
printf 'Options=defaults,noatime\\n[Install]\\nWantedBy=multi-user.target\\n' >> "/etc/systemd/system/$unit"
systemctl daemon-reload
systemctl enable --now "$unit"
stop=""; need=""
for m in $binds; do
  u=$(systemd-escape --path --suffix=mount "$m")
  if [ "$(systemctl is-active "$u" || true)" = active ]; then echo "$m: $u is active, left alone"; continue; fi
  case "$m" in
    /var/lib/containerd) svc=containerd.service ;;
    /var/lib/soci-snapshotter-grpc) svc=soci-snapshotter.service ;;
    *) svc=kubelet.service ;;
  esac
  if systemctl -q is-active "$svc"; then case " $stop " in *" $svc "*) ;; *) stop="$stop $svc" ;; esac; fi
  need="$need $m"
done
[ -z "$stop" ] || systemctl stop $stop
for m in $need; do
  sub="$array/$(basename "$m")"
  mkdir -p "$m" "$sub"
  cp -a "$m/." "$sub/"
  u=$(systemd-escape --path --suffix=mount "$m")
  printf '[Unit]\\nDescription=%s on the instance store RAID0 (stand-in)\\n[Mount]\\nWhat=%s\\nWhere=%s\\n' \\
    "$m" "$sub" "$m" > "/etc/systemd/system/$u"
  printf 'Type=none\\nOptions=bind\\n[Install]\\nWantedBy=multi-user.target\\n' >> "/etc/systemd/system/$u"
  systemctl daemon-reload
  systemctl enable --now "$u"
done
[ -z "$stop" ] || systemctl start $stop
echo "RAID0 of" $disks "at $array"
"""
