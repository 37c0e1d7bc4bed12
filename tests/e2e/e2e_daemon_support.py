"""Host-side helpers of the daemon e2e test (test_e2e_daemon.py): what goes into a host before it
boots (the kbootd unit, stand-ins for the kubelet and containerd, the test API server's code),
the seeds, and bounded waits whose failures show `systemctl status` and the journal tail.

Stand-ins, installed into every host's overlay before boot (the containers cannot run a
real kubelet or containerd: no usable cgroups):

* /usr/bin/kubelet = e2e_daemon_kubelet.py with /etc/systemd/system/kubelet.service (not
  enabled: kbootd's kubelet-start enables and restarts it, through the drop-in it writes);
* /usr/bin/containerd = e2e_daemon_containerd.py with containerd.service (enabled, Type=notify);
* /usr/local/sbin/iptables: prints a version (preflight's FileExisting-iptables, an error
  below v1.33; the image has no iptables);
* /usr/local/sbin/modprobe: fails like modprobe in a container without /lib/modules (the
  image has no kmod, and kbootd's cri phase aborts when modprobe is missing altogether).

The kube-apiserver static Pod is played by tests/apiserver, started by the test inside the
control plane (start_apiserver) once kbootd wrote the kube-apiserver manifest.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import string
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tests.e2e.nspawn import CLEAN_ENV, Host, HostError, Seed

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
E2E_ROOT = "/opt/kbootd-e2e"              # the repository's tests package, inside a host
CONFIG_PATH = "/etc/kbootd/kbootd.yaml"
APISERVER_UNIT = "e2e-apiserver"
APISERVER_MANIFEST = "/etc/kubernetes/manifests/kube-apiserver.yaml"
KUBELET_VERSION = "v1.32.0"              # kbootd's default Kubernetes version

KUBELET_UNIT = """\
# kbootd e2e: the kubelet package's unit, running the stand-in /usr/bin/kubelet.
[Unit]
Description=kubelet: The Kubernetes Node Agent (kbootd e2e stand-in)
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
RestartSec=1
StartLimitIntervalSec=0

[Install]
WantedBy=multi-user.target
"""
CONTAINERD_UNIT = """\
# kbootd e2e: containerd's unit shape (Type=notify), running the stand-in /usr/bin/containerd.
[Unit]
Description=containerd container runtime (kbootd e2e stand-in)
After=network.target

[Service]
Type=notify
ExecStart=/usr/bin/containerd
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
"""
IPTABLES = "#!/bin/sh\n# kbootd e2e stand-in: preflight only looks for the binary\n" \
           "echo 'iptables v1.8.9 (nf_tables) [kbootd e2e stand-in]'\n"
MODPROBE = "#!/bin/sh\n# kbootd e2e stand-in: a container cannot load kernel modules\n" \
           "echo \"modprobe: FATAL: Module $1 not found in directory /lib/modules/$(uname -r)\" >&2\n" \
           "exit 1\n"
# kbootd's unit runs /usr/bin/kbootd (the package's path); a wheel installs /usr/local/bin/kbootd.
WHEEL_DROPIN = "[Service]\nExecStart=\nExecStart=/usr/local/bin/kbootd run\n"


# ------------------------------------------------------------------------------ install

def _write(upper: Path, path: str, text: str, mode: int = 0o644) -> None:
    p = upper / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    p.chmod(mode)


def _enable(upper: Path, unit_path: str, target: str = "multi-user.target") -> None:
    wants = upper / f"etc/systemd/system/{target}.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / Path(unit_path).name
    if not link.is_symlink():
        link.symlink_to(unit_path)


def install_node(host: Host) -> None:
    """Installer (after kbootd's): the unit, the stand-ins and the test API server's code."""
    up = host.upper
    packaged = any((up / d / "kbootd.service").exists()
                   for d in ("lib/systemd/system", "usr/lib/systemd/system"))
    if not packaged:            # a wheel: the repository's unit, as the package ships it
        _write(up, "/etc/systemd/system/kbootd.service", (REPO / "units/kbootd.service").read_text())
        _write(up, "/etc/systemd/system/kbootd.service.d/e2e-wheel.conf", WHEEL_DROPIN)
        _enable(up, "/etc/systemd/system/kbootd.service")
    _write(up, "/usr/bin/kubelet", (HERE / "e2e_daemon_kubelet.py").read_text(), 0o755)
    _write(up, "/usr/bin/containerd", (HERE / "e2e_daemon_containerd.py").read_text(), 0o755)
    _write(up, "/usr/local/sbin/iptables", IPTABLES, 0o755)
    _write(up, "/usr/local/sbin/modprobe", MODPROBE, 0o755)
    _write(up, "/etc/systemd/system/kubelet.service", KUBELET_UNIT)
    _write(up, "/etc/systemd/system/containerd.service", CONTAINERD_UNIT)
    _enable(up, "/etc/systemd/system/containerd.service")
    dst = up / E2E_ROOT.lstrip("/") / "tests"
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "tests/__init__.py", dst / "__init__.py")
    shutil.copy2(REPO / "tests/kubelet_double.py", dst / "kubelet_double.py")
    shutil.copytree(REPO / "tests/apiserver", dst / "apiserver", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(HERE / "e2e_daemon_apiserver.py", dst.parent / "e2e_daemon_apiserver.py")


# -------------------------------------------------------------------------------- seeds

def new_token() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(6)) + "." + \
        "".join(secrets.choice(alphabet) for _ in range(16))


def generate_ca() -> dict[str, str]:
    """`kbootd ca generate -o json` (this checkout's CLI): caCert, caKey, caCertHash."""
    r = subprocess.run([sys.executable, "-m", "kbootd", "ca", "generate", "-o", "json"],
                       capture_output=True, text=True, timeout=60, check=True, cwd=REPO)
    return json.loads(r.stdout)


def kbootd_document(**fields: Any) -> str:
    doc = {"apiVersion": "kbootd.io/v1alpha1", "kind": "KbootdConfiguration", **fields}
    return yaml.safe_dump(doc, sort_keys=False)


def seed(document: str | None, ca: dict[str, str] | None = None) -> Seed:
    """NoCloud user-data with write_files: kbootd.yaml (0600) and, for a control plane
    with a pre-made CA, ca.crt and ca.key where init picks them up (cloud-init/examples)."""
    files = []
    if document is not None:
        files.append({"path": CONFIG_PATH, "owner": "root:root", "permissions": "0600",
                      "content": document})
    if ca is not None:
        files += [{"path": "/etc/kubernetes/pki/ca.crt", "permissions": "0644", "content": ca["caCert"]},
                  {"path": "/etc/kubernetes/pki/ca.key", "permissions": "0600", "content": ca["caKey"]}]
    return Seed(user_data={"write_files": files})


def control_plane_document(ip: str, token: str, pin: str | None) -> str:
    """A control plane at ip: advertiseAddress is explicit (the hosts' netns have no default
    route to pick an interface from), the rest is kbootd's defaults."""
    kubeadm = [
        {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "InitConfiguration",
         "localAPIEndpoint": {"advertiseAddress": ip, "bindPort": 6443}},
        {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration",
         "kubernetesVersion": KUBELET_VERSION},
    ]
    return kbootd_document(role="control-plane", token=token, endpoint=f"{ip}:6443",
                           **({"caCertHashes": [pin]} if pin else {}), kubeadm=kubeadm)


# -------------------------------------------------------------------------------- waits

T = TypeVar("T")


def diagnose(host: Host, unit: str = "kbootd", lines: int = 40) -> str:
    """`systemctl status` and the journal tail of a unit, for failure messages."""
    out = []
    for cmd in (["systemctl", "status", "--no-pager", "-l", unit],
                ["journalctl", "--no-pager", "-o", "short-precise", "-n", str(lines), "-u", unit]):
        try:
            r = host.run(cmd, check=False, timeout=20)
            out.append(f"$ {' '.join(cmd)}\n{r.stdout}{r.stderr}")
        except (HostError, subprocess.TimeoutExpired) as e:
            out.append(f"$ {' '.join(cmd)}\n({e})")
    return f"--- {host.name} ---\n" + "\n".join(out)


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, *hosts: Host,
             units: tuple[str, ...] = ("kbootd",), interval: float = 0.25) -> T:
    """Poll probe until it returns something other than None/False; on timeout fail with
    the last value and each host's unit status and journal tail."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = probe()
        if last not in (None, False):
            return last
        if time.monotonic() >= deadline:
            details = "\n".join(diagnose(h, u) for h in hosts for u in units)
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}\n{details}")
        time.sleep(interval)


def unit(host: Host, name: str = "kbootd") -> dict[str, str]:
    return host.show(name, "ActiveState", "SubState", "StatusText", "Result", "ExecMainStatus",
                     "NRestarts", "MainPID")


def kbootd_entries(host: Host, *extra: str) -> list[dict[str, Any]]:
    """kbootd's own journal records (SYSLOG_IDENTIFIER=kbootd) of its unit."""
    return [e for e in host.journal("kbootd", *extra) if e.get("SYSLOG_IDENTIFIER") == "kbootd"]


def json_file(host: Host, path: str) -> dict[str, Any] | None:
    r = host.run(["cat", path], check=False)
    try:
        return json.loads(r.stdout) if r.returncode == 0 else None
    except ValueError:
        return None


def wait_active(host: Host, timeout: float, *others: Host) -> dict[str, str]:
    """kbootd sent READY=1: active/running; fails fast if the unit failed."""
    def probe() -> dict[str, str] | None:
        u = unit(host)
        if u["ActiveState"] == "failed":
            raise AssertionError(f"{host.name}: kbootd failed: {u}\n{diagnose(host)}")
        return u if u["ActiveState"] == "active" else None
    return wait_for(f"{host.name}: kbootd active (READY=1)", probe, timeout, host, *others)


# ------------------------------------------------------------------- the API server double

def start_apiserver(host: Host, timeout: float = 60) -> None:
    """Once kbootd wrote the kube-apiserver manifest, run the test API server inside the host
    with the PKI init generated, as the kubelet would run the static Pod."""
    wait_for(f"{host.name}: {APISERVER_MANIFEST}",
             lambda: host.run(["test", "-s", APISERVER_MANIFEST], check=False).returncode == 0,
             timeout, host)
    host.run(["systemd-run", f"--unit={APISERVER_UNIT}", f"--setenv=PYTHONPATH={E2E_ROOT}",
              "--property=StandardOutput=journal", "--property=SyslogIdentifier=e2e-apiserver",
              "python3", f"{E2E_ROOT}/e2e_daemon_apiserver.py", "--cert-dir", "/etc/kubernetes/pki",
              "--bind", host.ip or "127.0.0.1", "--port", "6443"])

    def serving() -> bool:
        if host.show(APISERVER_UNIT, "ActiveState")["ActiveState"] == "failed":
            raise AssertionError(f"{host.name}: the test API server failed\n{diagnose(host, APISERVER_UNIT)}")
        out = host.run(["journalctl", "-o", "cat", "--no-pager", "-u", APISERVER_UNIT], check=False).stdout
        return "serving https://" in out
    wait_for(f"{host.name}: the test API server serving", serving, timeout, host,
             units=(APISERVER_UNIT, "kbootd"))


# Runs inside a control plane: the API server's view through admin.conf (kbootd's client).
API_QUERY = """\
import json, sys
from kbootd import apiclient
from kbootd.hostio import Host
from kbootd.paths import Paths
class Ctx: pass
ctx = Ctx(); ctx.host = Host(Paths.rooted("/")); ctx.paths = ctx.host.paths
kc = apiclient.load_kubeconfig(ctx, "/etc/kubernetes/admin.conf")
c = apiclient.Client(apiclient.KubernetesTransport(kc), timeout=10)
kind, name = sys.argv[1], sys.argv[2]
ns = sys.argv[3] if len(sys.argv) > 3 else None
obj = c.get(kind, name, ns) if ns else c.get(kind, name)
print(json.dumps(obj))
"""


def api_get(host: Host, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
    r = host.run(["python3", "-c", API_QUERY, kind, name, *([namespace] if namespace else [])],
                 check=False, timeout=60)
    if r.returncode != 0:
        raise AssertionError(f"{host.name}: reading {kind} {name} failed:\n{r.stdout}\n{r.stderr}")
    return json.loads(r.stdout)


def journal_bytes(host: Host) -> bytes:
    """The host's whole journal in export format, every field of every record, as bytes
    (binary fields are raw there, so a secret cannot hide in one)."""
    r = subprocess.run(["nsenter", "-t", str(host.leader), "-m", "-u", "-i", "-n", "-p", "-C", "--",
                        "journalctl", "-o", "export", "--no-pager"],
                       capture_output=True, timeout=120, env=CLEAN_ENV, check=False)
    if r.returncode != 0:
        raise HostError(f"{host.name}: journalctl -o export exited {r.returncode}: {r.stderr[-500:]!r}")
    return r.stdout


def status_line(props: dict[str, str]) -> str:
    return re.sub(r"\s+", " ", props.get("StatusText", ""))
