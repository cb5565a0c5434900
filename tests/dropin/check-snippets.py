#!/usr/bin/python3
"""Validates the configuration snippets of docs/dropin.md (marked <!-- snippet:NAME --> before a fenced block):
containerd's (cgroupfs and systemd driver) through `containerd config dump`; CRI-O's, podman's containers.conf,
Docker's daemon.json (both drivers) and the RuntimeClass by parsing them and checking their fields against
what CRI-O, podman, dockerd and Kubernetes accept.   check-snippets.py docs/dropin.md"""
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


def containerd(snippet, systemd=False):
    what = "containerd (systemd driver)" if systemd else "containerd"
    with tempfile.TemporaryDirectory() as d:
        cfg = os.path.join(d, "config.toml")
        with open(cfg, "w") as f:
            f.write(snippet)
        p = subprocess.run(["containerd", "--config", cfg, "config", "dump"], capture_output=True, text=True,
                           timeout=60)
    check(p.returncode == 0, f"{what}: containerd config dump accepts the snippet ({p.stderr.strip()[:200]})")
    if p.returncode:
        return
    dumped = tomllib.loads(p.stdout)
    rt = dumped["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"].get("trustme")
    check(rt is not None, f"{what}: runtime handler 'trustme' present after dump")
    if rt:
        check(rt.get("runtime_type") == "io.containerd.runc.v2", f"{what}: runc shim v2")
        opts = rt.get("options", {})
        check(opts.get("BinaryName", "").endswith("/trustme-runtime"), f"{what}: options.BinaryName kept")
        check(opts.get("SystemdCgroup") is systemd, f"{what}: SystemdCgroup {str(systemd).lower()}")


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


def docker(snippet, systemd=False):
    what = "docker (systemd driver)" if systemd else "docker"
    try:
        cfg = json.loads(snippet)
    except json.JSONDecodeError as e:
        check(False, f"{what}: daemon.json parses ({e})")
        return
    check(True, f"{what}: daemon.json parses")
    # dockerd 20.10: "exec-opts" is a list of KEY=VALUE; native.cgroupdriver is cgroupfs or systemd
    opts = dict(o.split("=", 1) for o in cfg.get("exec-opts", []) if "=" in o)
    check(all("=" in o for o in cfg.get("exec-opts", [])), f"{what}: exec-opts are KEY=VALUE")
    check(opts.get("native.cgroupdriver", "cgroupfs") == ("systemd" if systemd else "cgroupfs"),
          f"{what}: native.cgroupdriver {'systemd' if systemd else 'cgroupfs (default)'}")
    rt = cfg.get("runtimes", {}).get("trustme")
    check(isinstance(rt, dict), f"{what}: runtimes.trustme present")
    if not isinstance(rt, dict):
        return
    # dockerd 20.10 (daemon/config): a runtime is {"path", "runtimeArgs"}
    check(set(rt) <= {"path", "runtimeArgs"}, f"{what}: only known runtime keys ({sorted(rt)})")
    check(rt.get("path", "").startswith("/") and rt["path"].endswith("/trustme-runtime"),
          f"{what}: runtimes.trustme.path is the absolute path of trustme-runtime")
    dflt = cfg.get("default-runtime")
    check(dflt is None or dflt in cfg["runtimes"] or dflt == "runc", f"{what}: default-runtime names a runtime")


# podman 4.3's containers.conf [engine] keys the snippets use (containers.conf(5))
PODMAN_ENGINE_KEYS = {"runtime", "cgroup_manager", "events_logger", "runtimes"}


def podman(snippet, driver):
    try:
        cfg = tomllib.loads(snippet)
    except tomllib.TOMLDecodeError as e:
        check(False, f"podman ({driver}): containers.conf parses ({e})")
        return
    check(True, f"podman ({driver}): containers.conf parses")
    eng = cfg.get("engine", {})
    unknown = set(eng) - PODMAN_ENGINE_KEYS
    check(not unknown, f"podman ({driver}): only known [engine] keys (unknown: {sorted(unknown)})")
    check(eng.get("cgroup_manager") == driver, f"podman ({driver}): cgroup_manager = {driver}")
    paths = eng.get("runtimes", {}).get(eng.get("runtime", ""))
    check(isinstance(paths, list) and all(isinstance(x, str) and x.startswith("/") for x in paths),
          f"podman ({driver}): [engine.runtimes] lists the absolute paths of engine.runtime")
    check(bool(paths) and paths[0].endswith("/trustme-runtime"), f"podman ({driver}): the runtime is trustme-runtime")
    if driver == "cgroupfs":
        check(eng.get("events_logger") in ("file", "none"), "podman (cgroupfs): events not to the journal")


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
    for k in ("containerd", "containerd_systemd", "crio", "docker", "docker_systemd", "podman_systemd",
              "podman_cgroupfs", "runtimeclass"):
        check(k in s, f"snippet {k} found in {doc}")
    handlers = set()
    if "containerd" in s:
        containerd(s["containerd"])
        handlers |= set(tomllib.loads(s["containerd"])["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]
                        ["runtimes"])
    if "crio" in s:
        crio(s["crio"])
        handlers |= set(tomllib.loads(s["crio"])["crio"]["runtime"]["runtimes"])
    if "containerd_systemd" in s:
        containerd(s["containerd_systemd"], systemd=True)
    if "docker" in s:
        docker(s["docker"])
    if "docker_systemd" in s:
        docker(s["docker_systemd"], systemd=True)
    for driver in ("systemd", "cgroupfs"):
        if f"podman_{driver}" in s:
            podman(s[f"podman_{driver}"], driver)
    if "runtimeclass" in s:
        runtimeclass(s["runtimeclass"], handlers)
    print(f"\n{len(FAILS)} failure(s)")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
