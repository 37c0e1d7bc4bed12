"""Smoke: kbootd installed on real Debian 12 and 13 hosts (systemd 252/257, cloud-init
22.4/25.1, Debian's python3 libraries) works, and two hosts on the private bridge reach each
other. Two hosts boot once for the whole module (per release). The daemon is not under test
here (test_e2e_daemon is): when the artefact is the deb, its unit is disabled on these hosts."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

from kbootd.version import __version__
from tests.e2e import image
from tests.e2e.hosts import Hosts
from tests.e2e.nspawn import Host, Seed

pytestmark = pytest.mark.e2e

CP_IP, WORKER_IP = "10.213.0.10", "10.213.0.11"
EXAMPLES = Path(__file__).resolve().parents[2] / "cloud-init/examples"
# The one example that is not valid cloud-config from cloud-init 23.4 on (its name says so).
DEGRADES = "user-data-key.yaml"
# A kubeadm configuration for `kbootd init --config`; not /etc/kbootd/kbootd.yaml, which
# holds one kbootd document (the daemon's settings), not kubeadm's documents.
CONFIG_PATH = "/root/kubeadm.yaml"
INIT_CONFIG = textwrap.dedent(f"""\
    apiVersion: kubeadm.k8s.io/v1beta4
    kind: InitConfiguration
    bootstrapTokens:
    - token: abcdef.0123456789abcdef
      ttl: 2h
    localAPIEndpoint:
      advertiseAddress: {CP_IP}
      bindPort: 6443
    nodeRegistration:
      name: cp
    ---
    apiVersion: kubeadm.k8s.io/v1beta4
    kind: ClusterConfiguration
    kubernetesVersion: v1.30.4
    networking:
      podSubnet: 10.244.0.0/16
    """)
CP_SEED = Seed(user_data={"write_files": [
    {"path": CONFIG_PATH, "permissions": "0600", "owner": "root:root", "content": INIT_CONFIG},
]})
# Everything init writes in a real run; a dry run must leave all of it as it was.
KUBE_PATHS = ["/etc/kubernetes", "/var/lib/kubelet", "/var/lib/etcd", "/etc/containerd",
              "/etc/systemd/system/kubelet.service.d", "/etc/default/kubelet"]


def _daemon_disabled(h: Host) -> None:
    """The deb enables kbootd.service; without settings it would fail at boot (as it
    should, see test_e2e_package) and leave the system degraded."""
    (h.upper / "etc/systemd/system/multi-user.target.wants/kbootd.service").unlink(missing_ok=True)


@pytest.fixture(scope="module")
def cp(e2e_hosts: Hosts) -> Host:
    return e2e_hosts.boot("cp", ip=CP_IP, seed=CP_SEED, install=[_daemon_disabled])


@pytest.fixture(scope="module")
def worker(e2e_hosts: Hosts) -> Host:
    return e2e_hosts.boot("worker", ip=WORKER_IP, kbootd=False)


def test_boot_is_clean_and_seed_delivered(cp: Host) -> None:
    failed = cp.run(["systemctl", "--failed", "--no-legend"]).stdout
    assert cp.run(["systemctl", "is-system-running"], check=False).stdout.strip() == "running", failed
    assert cp.wait_cloud_init() == "done"
    result = json.loads(cp.read_file("/run/cloud-init/result.json"))["v1"]
    assert result["errors"] == [], result
    assert cp.instance_id in cp.run(["cloud-init", "query", "instance_id"]).stdout
    assert cp.run(["hostname"]).stdout.strip() == "cp"
    assert cp.run(["stat", "-c", "%a %U:%G", CONFIG_PATH]).stdout.split() == ["600", "root:root"]
    assert cp.read_file(CONFIG_PATH) == INIT_CONFIG


def test_release_is_the_one_tested(cp: Host, e2e_suite: str) -> None:
    """The versions the README's platform line names for this release."""
    want = image.RELEASES[e2e_suite]
    assert cp.read_file("/etc/debian_version").startswith(want["debian"] + "."), want
    systemd = cp.run(["systemctl", "--version"]).stdout.split()
    assert systemd[:2] == ["systemd", want["systemd"]], systemd[:3]
    r = cp.run(["cloud-init", "--version"])
    cloud_init = r.stdout + r.stderr
    assert f" {want['cloud-init']}." in cloud_init, cloud_init
    print(f"\n[e2e] {e2e_suite}: Debian {cp.read_file('/etc/debian_version').strip()}, "
          f"systemd {systemd[1]} {systemd[2]}, {cloud_init.split()[-1]}")


def test_kbootd_runs_on_debians_python_and_libraries(cp: Host, e2e_image, e2e_suite: str) -> None:
    py = image.python_version(e2e_image)
    assert py == image.RELEASES[e2e_suite]["python"]
    out = cp.run(["kbootd", "version"]).stdout
    assert f'GitVersion:"v{__version__}"' in out and f'PythonVersion:"{py}.' in out, out
    probe = ("import json, kbootd, cryptography, kubernetes, yaml, requests, shtab, systemd\n"
             "mods = (kbootd, cryptography, kubernetes, yaml, requests, shtab, systemd)\n"
             "print(json.dumps({m.__name__: m.__path__[0] for m in mods}))\n")
    where = json.loads(cp.run(["python3", "-c", probe]).stdout)
    # The wheel goes to /usr/local (the harness), the deb to Debian's dist-packages.
    assert where.pop("kbootd") in (f"/usr/local/lib/python{py}/dist-packages/kbootd",
                                   "/usr/lib/python3/dist-packages/kbootd")
    assert all(p.startswith("/usr/lib/python3/dist-packages/") for p in where.values()), where
    got = cp.run(["python3", "-c", "import cryptography; print(cryptography.__version__)"]).stdout
    assert got.startswith(image.RELEASES[e2e_suite]["cryptography"]), f"not {e2e_suite}'s cryptography: {got}"


def test_every_kbootd_module_imports_under_debians_libraries(cp: Host) -> None:
    # Catches library API drift (Debian 12: cryptography 38, kubernetes 22.6, shtab 1.5;
    # Debian 13: 43, 30.1, 1.7) in modules the commands below do not reach yet.
    probe = ("import importlib, pkgutil, traceback, kbootd\n"
             "bad = 0\n"
             "for m in pkgutil.walk_packages(kbootd.__path__, 'kbootd.'):\n"
             "    if m.name.endswith('.__main__'):\n"
             "        continue  # runs the CLI\n"
             "    try:\n"
             "        importlib.import_module(m.name)\n"
             "    except Exception:\n"
             "        bad += 1; print(m.name, traceback.format_exc(limit=-2))\n"
             "raise SystemExit(bad)\n")
    r = cp.run(["python3", "-c", probe], check=False)
    assert r.returncode == 0, r.stdout + r.stderr


def test_config_print_init_defaults(cp: Host) -> None:
    r = cp.run(["kbootd", "config", "print", "init-defaults"], check=False)
    assert r.returncode == 0, r.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(r.stdout) if d]
    assert kinds[:2] == ["InitConfiguration", "ClusterConfiguration"], r.stdout


def _snapshot(h: Host) -> str:
    cmd = ["find", *KUBE_PATHS, "-printf", "%p %m %s %T@\n"]
    return h.run(cmd, check=False).stdout        # a missing path: empty and rc 1, both fine


def test_init_dry_run_writes_nothing(cp: Host) -> None:
    before = _snapshot(cp)
    r = cp.run(["kbootd", "init", "--dry-run", "--config", CONFIG_PATH,
                "--ignore-preflight-errors=all", "-v", "5"], check=False, timeout=120)
    assert r.returncode == 0, f"rc={r.returncode}\nstdout:\n{r.stdout[-3000:]}\nstderr:\n{r.stderr[-5000:]}"
    assert _snapshot(cp) == before
    assert cp.run(["test", "-e", "/etc/kubernetes"], check=False).returncode != 0


# One TCP exchange per direction, inside the containers only (never from the root netns).
SERVE = ("import socket, sys\n"
         "s = socket.create_server((sys.argv[1], 7777))\n"
         "c, _ = s.accept(); c.sendall(socket.gethostname().encode()); c.close()\n")
ASK = ("import socket, sys, time\n"
       "for _ in range(50):\n"
       "    try:\n"
       "        c = socket.create_connection((sys.argv[1], 7777), timeout=2); break\n"
       "    except OSError:\n"
       "        time.sleep(0.1)\n"
       "print(c.recv(100).decode())\n")


@pytest.mark.parametrize("direction", ["cp->worker", "worker->cp"])
def test_hosts_reach_each_other_on_the_private_bridge(cp: Host, worker: Host, direction: str) -> None:
    client, server = (cp, worker) if direction == "cp->worker" else (worker, cp)
    unit = f"e2e-serve-{direction.replace('->', '-to-')}"
    server.run(["systemd-run", f"--unit={unit}", "--property=RuntimeMaxSec=60",
                "python3", "-c", SERVE, server.ip])
    got = client.run(["python3", "-c", ASK, server.ip], timeout=30).stdout.strip()
    assert got == server.name
    assert client.run(["ip", "-4", "-o", "addr", "show", "eth0"]).stdout.split()[3] == f"{client.ip}/24"


def test_cloud_init_schema_accepts_the_user_data_examples(cp: Host, e2e_suite: str) -> None:
    """Real `cloud-init schema` on every user-data example; the `kbootd:` key form is
    refused from 23.4 on (the README and the example say so: it degrades)."""
    newer = tuple(map(int, image.RELEASES[e2e_suite]["cloud-init"].split("."))) >= (23, 4)
    checked = []
    for ex in sorted(EXAMPLES.glob("*.yaml")):
        text = ex.read_text()
        if not text.startswith("#cloud-config\n"):
            continue                                      # meta-data: see the next test
        cp.run(["sh", "-c", "cat > /root/example.yaml"], input=text)
        r = cp.run(["cloud-init", "schema", "-c", "/root/example.yaml"], check=False)
        out = r.stdout + r.stderr
        if ex.name == DEGRADES and newer:
            assert r.returncode != 0 and "'kbootd' was unexpected" in out, out
        else:
            assert r.returncode == 0 and "Valid" in out, f"{ex.name}: {out}"
        checked.append(ex.name)
    assert DEGRADES in checked and len(checked) >= 5, checked


def test_nocloud_meta_data_example_is_valid_meta_data(e2e_hosts: Hosts) -> None:
    """The meta-data example as a real NoCloud seed's meta-data: its kbootd-* keys reach
    the root-only instance-data-sensitive.json, where kbootd reads them; and, as the
    README warns, the world-readable instance-data.json too."""
    md = yaml.safe_load((EXAMPLES / "nocloud-meta-data.yaml").read_text())
    h = e2e_hosts.boot("meta", seed=Seed(meta_data=md), kbootd=False)
    assert h.wait_cloud_init() == "done"
    for name, mode in (("instance-data-sensitive.json", "600"), ("instance-data.json", "644")):
        path = f"/run/cloud-init/{name}"
        assert h.run(["stat", "-c", "%a", path]).stdout.strip() == mode, path
        got = json.loads(h.read_file(path))["ds"]["meta_data"]
        assert {k: got.get(k) for k in md if k.startswith("kbootd-")} == \
            {k: v for k, v in md.items() if k.startswith("kbootd-")}, (name, got)
