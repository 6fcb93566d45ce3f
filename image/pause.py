#!/usr/bin/env python3
"""The node image's pause image, built offline: an OCI image layout tarball whose one layer holds /pause, Debian's
statically linked catatonit, run as `/pause -P` (catatonit's pause mode: no child, it only reaps and waits for a
signal, which is the whole job of a pod sandbox's process).

    image/pause.py CATATONIT OUT.tar [--name localhost/kubernetes/pause:latest]

The name is AL2023's and nodeboot's default sandbox image; `ctr images import` takes it from the index's
io.containerd.image.name annotation. The tarball is deterministic (owner root, mtime 0, sorted JSON): the same
catatonit gives the same digests, so the image's cache key does not move for nothing.
"""
import argparse
import hashlib
import io
import json
import os
import sys
import tarfile

NAME = "localhost/kubernetes/pause:latest"
OCI = "application/vnd.oci.image"


def tar_bytes(entries):
    """A deterministic tar of (name, data or None for a directory, mode)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mode in entries:
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode = 0, 0, 0, "root", "root", mode
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def build(catatonit, name=NAME):
    """The OCI layout tarball's bytes and the manifest's digest."""
    layer = tar_bytes([("pause", catatonit, 0o755)])
    config = canonical({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/pause", "-P"], "User": "65535:65535", "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [digest(layer)]},
        "history": [{"created_by": "nodeboot image/pause.py: Debian's catatonit as /pause"}]})
    manifest = canonical({
        "schemaVersion": 2, "mediaType": f"{OCI}.manifest.v1+json",
        "config": {"mediaType": f"{OCI}.config.v1+json", "digest": digest(config), "size": len(config)},
        "layers": [{"mediaType": f"{OCI}.layer.v1.tar", "digest": digest(layer), "size": len(layer)}]})
    index = canonical({
        "schemaVersion": 2, "mediaType": f"{OCI}.index.v1+json",
        "manifests": [{"mediaType": f"{OCI}.manifest.v1+json", "digest": digest(manifest), "size": len(manifest),
                       "platform": {"architecture": "amd64", "os": "linux"},
                       "annotations": {"io.containerd.image.name": name,
                                       "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1]}}]})
    blobs = [(f"blobs/sha256/{digest(data)[7:]}", data, 0o644) for data in (layer, config, manifest)]
    tarball = tar_bytes([("oci-layout", canonical({"imageLayoutVersion": "1.0.0"}), 0o644),
                         ("index.json", index, 0o644), ("blobs", None, 0o755), ("blobs/sha256", None, 0o755), *blobs])
    return tarball, digest(manifest)


def main():
    parser = argparse.ArgumentParser(description="Build the pause image (OCI layout tarball) from catatonit.")
    parser.add_argument("catatonit")
    parser.add_argument("out")
    parser.add_argument("--name", default=NAME)
    opts = parser.parse_args()
    with open(opts.catatonit, "rb") as f:
        catatonit = f.read()
    if catatonit[:4] != b"\x7fELF":
        print(f"pause: {opts.catatonit} is not an ELF executable", file=sys.stderr)
        return 2
    tarball, manifest = build(catatonit, opts.name)
    partial = opts.out + ".tmp"
    with open(partial, "wb") as f:
        f.write(tarball)
    os.rename(partial, opts.out)
    print(f"{opts.out}: {opts.name} {manifest} ({len(tarball)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
