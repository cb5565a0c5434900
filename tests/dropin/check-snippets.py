#!/usr/bin/python3
"""Validates the configuration snippets of docs/dropin.md (marked <!-- snippet:NAME --> before a fenced block):
containerd's through `containerd config dump`; CRI-O's, Docker's daemon.json and the RuntimeClass by parsing
them and checking their fields against what CRI-O, dockerd and Kubernetes accept.   check-snippets.py docs/dropin.md"""
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib

import yaml

FAILS = []


def check(cond, what):
    print(("PASS " if cond else "FAIL ") + what)
    if not cond:
        FAILS.append(what)


def snippets(doc):
    text = open(doc).read()
    out = {}
    for m in re.finditer(r"<!-- snippet:(\w+) -->\s*```\w*\n(.*?)```", text, re.S):
        out[m.group(1)] = m.group(2)
    return out


def containerd(snippet):
    with tempfile.TemporaryDirectory() as d:
        cfg = os.path.join(d, "config.toml")
        with open(cfg, "w") as f:
            f.write(snippet)
        p = subprocess.run(["containerd", "--config", cfg, "config", "dump"], capture_output=True, text=True,
                           timeout=60)
    check(p.returncode == 0, f"containerd config dump accepts the snippet ({p.stderr.strip()[:200]})")
    if p.returncode:
        return
    dumped = tomllib.loads(p.stdout)
    rt = dumped["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"].get("trustme")
    check(rt is not None, "containerd: runtime handler 'trustme' present after dump")
    if rt:
        check(rt.get("runtime_type") == "io.containerd.runc.v2", "containerd: runc shim v2")
        opts = rt.get("options", {})
        check(opts.get("BinaryName", "").endswith("/trustme-runtime"), "containerd: options.BinaryName kept")
        check(opts.get("SystemdCgroup") is False, "containerd: SystemdCgroup false")


CRIO_RUNTIME_KEYS = {"runtime_path", "runtime_type", "runtime_root", "runtime_config_path", "monitor_path",
                     "monitor_cgroup", "monitor_exec_cgroup", "monitor_env", "privileged_without_host_devices",
                     "allowed_annotations", "platform_runtime_paths", "container_min_memory"}


def crio(snippet):
    try:
        cfg = tomllib.loads(snippet)
    except tomllib.TOMLDecodeError as e:
        check(False, f"crio: TOML parses ({e})")
        return
    check(True, "crio: TOML parses")
    rt = cfg.get("crio", {}).get("runtime", {})
    table = rt.get("runtimes", {}).get("trustme")
    check(table is not None, "crio: [crio.runtime.runtimes.trustme] present")
    if table is None:
        return
    unknown = set(table) - CRIO_RUNTIME_KEYS
    check(not unknown, f"crio: only known runtime-handler keys (unknown: {sorted(unknown)})")
    check(table.get("runtime_type") in ("oci", "vm", "pod"), "crio: runtime_type oci")
    check(os.path.isabs(table.get("runtime_path", "")), "crio: runtime_path absolute")
    dflt = rt.get("default_runtime")
    check(dflt is None or dflt in rt.get("runtimes", {}), "crio: default_runtime names a defined runtime")


def docker(snippet):
    try:
        cfg = json.loads(snippet)
    except json.JSONDecodeError as e:
        check(False, f"docker: daemon.json parses ({e})")
        return
    check(True, "docker: daemon.json parses")
    rt = cfg.get("runtimes", {}).get("trustme")
    check(isinstance(rt, dict), "docker: runtimes.trustme present")
    if not isinstance(rt, dict):
        return
    # dockerd 20.10 (daemon/config): a runtime is {"path", "runtimeArgs"}
    check(set(rt) <= {"path", "runtimeArgs"}, f"docker: only known runtime keys ({sorted(rt)})")
    check(rt.get("path", "").startswith("/") and rt["path"].endswith("/trustme-runtime"),
          "docker: runtimes.trustme.path is the absolute path of trustme-runtime")
    dflt = cfg.get("default-runtime")
    check(dflt is None or dflt in cfg["runtimes"] or dflt == "runc", "docker: default-runtime names a runtime")


DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def runtimeclass(snippet, handlers):
    docs = list(yaml.safe_load_all(snippet))
    rcs = [d for d in docs if d and d.get("kind") == "RuntimeClass"]
    check(len(rcs) == 1, "runtimeclass: one RuntimeClass")
    if not rcs:
        return
    rc = rcs[0]
    check(rc.get("apiVersion") == "node.k8s.io/v1", "runtimeclass: apiVersion node.k8s.io/v1")
    check(set(rc) <= {"apiVersion", "kind", "metadata", "handler", "overhead", "scheduling"},
          f"runtimeclass: only RuntimeClass fields ({sorted(rc)})")
    name = rc.get("metadata", {}).get("name", "")
    check(bool(DNS_SUBDOMAIN.match(name)) and len(name) <= 253, "runtimeclass: metadata.name is a DNS subdomain")
    h = rc.get("handler", "")
    check(bool(DNS_LABEL.match(h)) and len(h) <= 63, "runtimeclass: handler is a DNS label")
    check(h in handlers, f"runtimeclass: handler {h!r} is the containerd/CRI-O runtime name {sorted(handlers)}")
    sel = rc.get("scheduling", {}).get("nodeSelector", {})
    check(all(isinstance(v, str) for v in sel.values()), "runtimeclass: nodeSelector values are strings")
    pods = [d for d in docs if d and d.get("kind") == "Pod"]
    for p in pods:
        check(p["spec"].get("runtimeClassName") == name, "pod: runtimeClassName names the RuntimeClass")


def main():
    doc = sys.argv[1]
    s = snippets(doc)
    for k in ("containerd", "crio", "docker", "runtimeclass"):
        check(k in s, f"snippet {k} found in {doc}")
    handlers = set()
    if "containerd" in s:
        containerd(s["containerd"])
        handlers |= set(tomllib.loads(s["containerd"])["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]
                        ["runtimes"])
    if "crio" in s:
        crio(s["crio"])
        handlers |= set(tomllib.loads(s["crio"])["crio"]["runtime"]["runtimes"])
    if "docker" in s:
        docker(s["docker"])
    if "runtimeclass" in s:
        runtimeclass(s["runtimeclass"], handlers)
    print(f"\n{len(FAILS)} failure(s)")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
