"""What scripts/conformance.py and scripts/bad-input.py share: node roots as a machine image
bakes them, file helpers, and running the agent under a time limit in its own process group."""
import contextlib
import errno
import os
import shutil
import signal
import subprocess
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
