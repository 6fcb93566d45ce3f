"""What scripts/conformance.py and scripts/bad-input.py share: node roots as a machine image
bakes them, file helpers, and running the agent under a time limit in its own process group."""
import contextlib
import errno
import os
import shutil
import signal
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
