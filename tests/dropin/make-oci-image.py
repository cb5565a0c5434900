#!/usr/bin/python3
"""Builds an OCI image archive (oci-layout, index.json, blobs) from a rootfs directory, offline:
   make-oci-image.py ROOTFS OUT.tar NAME   (NAME e.g. docker.io/library/busybox:dropin)"""
import hashlib
import io
import json
import sys
import tarfile


def blob(tar, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo("blobs/sha256/" + digest.split(":")[1])
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))
    return digest, len(data)


def layer_tar(rootfs):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        def reset(ti):
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = "root"
            ti.mtime = 0
            return ti
        t.add(rootfs, arcname=".", filter=reset)
    return buf.getvalue()


def main():
    rootfs, out, name = sys.argv[1:4]
    layer = layer_tar(rootfs)
    with tarfile.open(out, "w") as tar:
        ldigest, lsize = blob(tar, layer)
        config = {"architecture": "amd64", "os": "linux",
                  "config": {"Cmd": ["/bin/sh"], "WorkingDir": "/",
                             "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
                  "rootfs": {"type": "layers", "diff_ids": [ldigest]},
                  "history": [{"created_by": "tests/fixtures/make-rootfs.sh"}]}
        cdigest, csize = blob(tar, json.dumps(config).encode())
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": cdigest, "size": csize},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                "digest": ldigest, "size": lsize}]}
        mdigest, msize = blob(tar, json.dumps(manifest).encode())
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                "digest": mdigest, "size": msize,
                                "platform": {"architecture": "amd64", "os": "linux"},
                                "annotations": {"io.containerd.image.name": name,
                                                "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1]}}]}
        for fname, data in (("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode()),
                            ("index.json", json.dumps(index).encode())):
            info = tarfile.TarInfo(fname)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))


if __name__ == "__main__":
    main()
