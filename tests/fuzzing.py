"""The project's fuzz surfaces: Hypothesis strategies over every input kbootd reads, and the
one property they all share (issue 11): the code either succeeds or raises a KbootdError whose
exit code is 3 (4 for trust material; retried TransientError for what a server sent) and whose
message names the source; never another exception, never a hang.

tests/test_fuzz.py runs a short profile in the suite (KBOOTD_FUZZ=long for more);
bench/fuzz.py runs the long one and prints cases, clean errors, unexpected exceptions and hangs.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import os
import signal
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from kbootd.errors import KbootdError, TransientError

DATA = Path(__file__).parent / "data"
TOKEN = "abcdef.0123456789abcdef"
SECRET = "0123456789abcdef"
PIN = "sha256:" + "0b5c07da32772eb431ea1ba6f4614eab673b8c42a313c767bd3f31f49da01d2d"


class Hang(Exception):
    """One case ran past its time budget."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """SIGALRM in the main thread: a case that loops or blows up in time is a finding, not a stall."""
    def fire(_sig: int, _frame: Any) -> None:
        raise Hang(f"still running after {seconds}s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# --- hostile values ---------------------------------------------------------------------------------

HOSTILE_STRINGS = [
    "", " ", "-", "..", "../..", "/../../victim", "relative/dir", "a" * 300, "\x00", "\u2028", "é",
    ".inf", "-.inf", ".nan", "1e20", "1e400", "99999999999h", "9" * 40 + "h", "-1s", "0x10", "1.5.2",
    "v999999999999999999999.0.0", "v1.32.0", "v1." + "9" * 30 + ".0", "10.96.0.0/30", "::/0",
    "10.0.0.1:99999", "[::1]:6443", "https://[::1", "http://x", "sha256:", "sha256:" + "g" * 64,
    "abcdef.0123456789abcdef", "ABCDEF.0123456789ABCDEF", "{a: 1}", "[", "~", "null", "yes", "no",
    "bogus", "all", "*", "%", "\\", "${HOME}", "-h", "--help",
]


def scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(HOSTILE_STRINGS),
        st.text(max_size=30),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.sampled_from([0, -1, 2**31, 2**63, 10**30, 10**400]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(),
        st.none(),
    )


def values(depth: int = 3) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.one_of(st.text(max_size=10), st.sampled_from(["a", "name", "value", "kind"])),
                            inner, max_size=4),
        ),
        max_leaves=12,
    )


def deep(n: int) -> Any:
    """A value nested n levels: {a: {a: ... }} or [[...]]."""
    out: Any = 1
    for i in range(n):
        out = {"a": out} if i % 2 else [out]
    return out


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


def _set(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    cur = obj
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    return obj


@st.composite
def mutated(draw: st.DrawFn, bases: list[Any], *, max_changes: int = 3) -> Any:
    """A real document with one to a few of its own fields (or new ones) set to hostile values."""
    doc = copy.deepcopy(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(1, max_changes))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        new = draw(st.one_of(values(), st.integers(50, 400).map(deep))) if draw(st.integers(0, 9)) else None
        if draw(st.integers(0, 5)) == 0 and path and isinstance(_get(doc, path[:-1]), dict):
            path = (*path[:-1], draw(st.sampled_from(["bogus", "kind", "apiVersion", "skipPhases"])))
        try:
            doc = _set(doc, path, new)
        except (TypeError, IndexError, KeyError):
            pass
    return doc


def _get(obj: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        obj = obj[p]
    return obj


def dump(docs: list[Any] | Any) -> str | None:
    """YAML text of the documents, or None if PyYAML cannot write them (then the case is skipped)."""
    docs = docs if isinstance(docs, list) else [docs]
    try:
        return yaml.safe_dump_all(docs, sort_keys=False)
    except (yaml.YAMLError, RecursionError, ValueError, TypeError):
        return None


TEXT_TRICKS = [
    "? [a, b]\n: c\n", "[" * 50000, "{" * 2000, "a: !!int 0o777x\n", "a: !!float .nanx\n",
    "a: !!timestamp 2001-13-45\n", "a: " + "9" * 5000 + "\n", "- " * 3000 + "x\n", "\x00", "a: *b\n",
    "--- !!python/object:os.system\n", "\ufeffa: 1\n", "a: 1\na: 2\n",
]


def text_variants(base_texts: list[str]) -> st.SearchStrategy[str]:
    """Text-level damage on top of document-level mutations: truncation, splices, YAML tricks."""
    return st.one_of(
        st.sampled_from(TEXT_TRICKS),
        st.tuples(st.sampled_from(base_texts), st.integers(0, 2000)).map(lambda t: t[0][: t[1]]),
        st.tuples(st.sampled_from(base_texts), st.sampled_from(TEXT_TRICKS), st.integers(0, 400))
          .map(lambda t: t[0][: t[2]] + t[1] + t[0][t[2]:]),
        st.text(max_size=200),
    )


# --- the outcome of one case ------------------------------------------------------------------------

@dataclass
class Outcome:
    kind: str  # ok | clean | unexpected | hang
    detail: str = ""


def judge(fn: Callable[[], Any], names: tuple[str, ...], *, codes: tuple[int, ...] = (3,),
          transient_ok: bool = False, budget: float = 5.0, secret_check: bool = False) -> Outcome:
    """Run one case. secret_check: the message must not hold the token secret (for surfaces
    where the fuzzer puts it only where a token belongs)."""
    try:
        with time_limit(budget):
            fn()
    except Hang as e:
        return Outcome("hang", str(e))
    except KbootdError as e:
        if transient_ok and isinstance(e, TransientError):
            return Outcome("clean")
        if e.exit_code not in codes:
            return Outcome("unexpected", f"exit {e.exit_code}: {type(e).__name__}: {e}")
        msg = str(e)
        if names and not any(n in msg for n in names):
            return Outcome("unexpected", f"message names no source ({names}): {msg}")
        if secret_check and SECRET in msg:
            return Outcome("unexpected", f"secret in message: {msg}")
        return Outcome("clean")
    except Exception as e:  # the finding: anything else is a bug
        return Outcome("unexpected", f"{type(e).__name__}: {e}"[:500])
    return Outcome("ok")


# --- the surfaces -----------------------------------------------------------------------------------

def _warn(_msg: str) -> None:
    pass


def _docs(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


V1BETA3 = [
    {"apiVersion": "kubeadm.k8s.io/v1beta3", "kind": "InitConfiguration",
     "bootstrapTokens": [{"token": TOKEN, "ttl": "24h", "usages": ["signing"], "groups": ["system:bootstrappers:x"]}],
     "localAPIEndpoint": {"advertiseAddress": "10.0.0.10", "bindPort": 6443},
     "nodeRegistration": {"name": "cp", "kubeletExtraArgs": {"v": "2"}, "taints": [], "ignorePreflightErrors": []},
     "skipPhases": ["addon/kube-proxy"]},
    {"apiVersion": "kubeadm.k8s.io/v1beta3", "kind": "ClusterConfiguration",
     "kubernetesVersion": "v1.32.0", "certificatesDir": "/etc/kubernetes/pki",
     "networking": {"serviceSubnet": "10.96.0.0/12", "podSubnet": "10.244.0.0/16", "dnsDomain": "cluster.local"},
     "apiServer": {"extraArgs": {"profiling": "false"}, "timeoutForControlPlane": "4m0s", "certSANs": ["a"]},
     "controllerManager": {"extraArgs": {"node-cidr-mask-size": "24"}},
     "etcd": {"local": {"dataDir": "/var/lib/etcd", "extraArgs": {"a": "b"}}}},
]
V1BETA3_JOIN = {"apiVersion": "kubeadm.k8s.io/v1beta3", "kind": "JoinConfiguration",
                "discovery": {"bootstrapToken": {"token": TOKEN, "apiServerEndpoint": "10.0.0.10:6443",
                                                 "caCertHashes": [PIN]}, "timeout": "5m0s"},
                "nodeRegistration": {"name": "w"}}


def config_bases() -> list[list[Any]]:
    """Whole files (lists of documents): v1beta4 init and join, v1beta3 init and join, v1alpha1."""
    init4 = _docs(DATA / "init-v1beta4.yaml")
    init4[0]["skipPhases"] = ["addon/kube-proxy"]
    init4[1]["etcd"] = {"local": {"dataDir": "/var/lib/etcd"}}
    return [init4, _docs(DATA / "join-v1beta4.yaml"), V1BETA3, [V1BETA3_JOIN],
            _docs(DATA / "master-v1alpha1.yaml"), _docs(DATA / "node-v1alpha1.yaml")]


@st.composite
def config_texts(draw: st.DrawFn) -> str:
    bases = config_bases()
    if draw(st.integers(0, 5)) == 0:
        return draw(text_variants([t for b in bases if (t := dump(b))]))
    doc = draw(mutated(bases))
    return dump(doc) or ""


def config_case(text: str) -> Callable[[], Any]:
    from kbootd.config import load

    def run() -> None:
        parsed = load.parse_file("/fuzz/kubeadm.yaml", _warn, text=text)
        role = "init" if parsed.init is not None else "join"
        load.load_file("/fuzz/kubeadm.yaml", role, _warn, text=text)

    return run


CONFIG_NAMES = ("/fuzz/kubeadm.yaml",)


# daemon: kbootd.yaml, a drop-in, user-data (cloud-config) and instance data, in a temp root

KBOOTD_BASE = {"apiVersion": "kbootd.io/v1alpha1", "kind": "KbootdConfiguration", "role": "worker",
               "token": TOKEN, "endpoint": "10.0.0.10:6443", "caCertHash": PIN, "nodeName": "w-1",
               "supervise": {"interval": "30s"},
               "kubeadm": {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "JoinConfiguration",
                           "discovery": {"bootstrapToken": {"apiServerEndpoint": "10.0.0.10:6443"}},
                           "nodeRegistration": {"name": "w-1"}}}
KBOOTD_INIT = {"apiVersion": "kbootd.io/v1alpha1", "kind": "KbootdConfiguration", "role": "control-plane",
               "token": TOKEN, "kubeadm": {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration",
                                           "kubernetesVersion": "v1.32.0"}}
DROPIN_BASE = {"nodeName": "w-2", "endpoints": ["10.0.0.10:6443", "10.0.0.11:6443"],
               "unsafeSkipCAVerification": False}
INSTANCE_BASE = {"ds": {"meta_data": {"kbootd-role": "worker", "kbootd-endpoint": "10.0.0.10:6443",
                                      "kbootd-ca-cert-hash": PIN, "local-hostname": "w"},
                        "meta-data": {"tags": {"kbootd-role": "worker"}}}}
USERDATA_BASE = {"kbootd": {"role": "worker", "token": TOKEN, "endpoint": "10.0.0.10:6443", "caCertHash": PIN}}


@dataclass
class DaemonInput:
    files: dict[str, str | bytes]  # path inside the root -> content


@st.composite
def daemon_inputs(draw: st.DrawFn) -> DaemonInput:
    from kbootd.paths import Paths

    p = Paths()
    files: dict[str, str | bytes] = {}
    which = draw(st.lists(st.sampled_from(["yaml", "dropin", "combined", "cloudcfg", "sensitive"]),
                          min_size=1, max_size=3, unique=True))
    for w in which:
        if w == "yaml":
            base = draw(st.sampled_from([KBOOTD_BASE, KBOOTD_INIT]))
            files[f"{p.config_dir}/kbootd.yaml"] = dump(draw(mutated([base]))) or ""
        elif w == "dropin":
            files[f"{p.config_dir}/kbootd.d/10-x.yaml"] = dump(draw(mutated([DROPIN_BASE]))) or ""
        elif w == "combined":
            files[p.cloudinit_combined] = _json(draw(mutated([USERDATA_BASE])))
        elif w == "cloudcfg":
            files[p.cloudinit_cloud_config] = "#cloud-config\n" + (dump(draw(mutated([USERDATA_BASE]))) or "")
        else:
            files[p.cloudinit_sensitive] = _json(draw(mutated([INSTANCE_BASE])))
    if draw(st.integers(0, 6)) == 0:
        path = draw(st.sampled_from(sorted(files)))
        files[path] = draw(st.one_of(text_variants([str(files[path])]), st.binary(max_size=40)))
    return DaemonInput(files)


def _json(obj: Any) -> str:
    try:
        return json.dumps(obj)
    except (ValueError, TypeError, RecursionError):
        return "{"


def daemon_case(inp: DaemonInput) -> Callable[[], Any]:
    from kbootd.daemon import document
    from kbootd.hostio import Host
    from kbootd.paths import Paths

    def run() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            for path, content in inp.files.items():
                real = Path(tmp) / path.lstrip("/")
                real.parent.mkdir(parents=True, exist_ok=True)
                (real.write_bytes if isinstance(content, bytes) else real.write_text)(content)  # type: ignore[operator]
                os.chmod(real, 0o600)
            host = Host(Paths.rooted(tmp))
            doc, _ = document.load(host)
            document.build(doc, host, _warn)

    return run


DAEMON_NAMES = ("/etc/kbootd", "/run/cloud-init", "/var/lib/cloud", "user-data", "metadata", "kbootd document",
                "kubeadm", "kbootd.yaml", "instance", "built-in", "role", "token", "no role", "endpoint")


# state.json

STATE_BASE = {"version": 1, "role": "worker", "fingerprint": "f", "status": "running",
              "phases_done": ["discovery"], "node_name": "w", "endpoint": "https://10.0.0.10:6443",
              "failures": 2, "last_error": None, "last_failure_at": 1.0, "started_at": 1.0,
              "finished_at": None, "updated_at": 2.0}


@st.composite
def state_texts(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 5)) == 0:
        return draw(text_variants([json.dumps(STATE_BASE)]))
    return _json(draw(mutated([STATE_BASE])))


def state_case(text: str) -> Callable[[], Any]:
    from kbootd.daemon import state

    def run() -> None:
        s = state.State.from_json(text, "/var/lib/kbootd/state.json")
        # What the daemon does with a loaded state: all of it must hold for any state it accepts.
        state.backoff_delay(s.failures)
        state.summary(s)
        s.to_json()
        _ = s.done

    return run


# kubeconfigs and cluster-info

def ca_pem() -> bytes:
    """A throwaway self-signed CA (EC: fast), the kind cluster-info carries."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def kubeconfig_base(ca_pem: bytes) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "k", "cluster": {"server": "https://10.0.0.10:6443",
                                                   "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
            "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
            "current-context": "c",
            "users": [{"name": "u", "user": {"token": TOKEN}}]}


@st.composite
def kubeconfig_texts(draw: st.DrawFn, ca_pem: bytes) -> str:
    base = kubeconfig_base(ca_pem)
    if draw(st.integers(0, 5)) == 0:
        return draw(text_variants([dump(base) or ""]))
    return dump(draw(mutated([base]))) or ""


def kubeconfig_case(text: str | bytes) -> Callable[[], Any]:
    from kbootd import kubeconfigfile

    def run() -> None:
        kc = kubeconfigfile.parse(text, "/fuzz/admin.conf")
        _ = kc.endpoint
        if kc.ca_pem is not None:
            _ = kc.ca_cert

    return run


@st.composite
def cluster_infos(draw: st.DrawFn, ca_pem: bytes) -> dict[str, Any]:
    """cluster-info's data: a kubeconfig (mutated, or hostile text) signed with the right key, or
    a damaged signature."""
    from kbootd import jws

    kc = draw(st.one_of(kubeconfig_texts(ca_pem),
                        st.sampled_from(["[" * 200_000, "\ud800", "a: \udfff\n", "clusters: []\n"])))
    try:
        signed = jws.sign(kc, "abcdef", SECRET)
    except UnicodeEncodeError:  # a lone surrogate cannot be signed; an attacker sends it anyway
        signed = "e30..e30"
    sig = signed if draw(st.booleans()) else draw(
        st.one_of(st.text(max_size=40), st.sampled_from(["\ud800..", "..", "a.b.c", "e30..e30"])))
    data: dict[str, Any] = {"kubeconfig": kc, "jws-kubeconfig-abcdef": sig}
    if draw(st.integers(0, 8)) == 0:
        data = draw(mutated([data]))
    return data if isinstance(data, dict) else {"kubeconfig": data}


def cluster_info_case(data: dict[str, Any], pins: tuple[str, ...] = ()) -> Callable[[], Any]:
    from kbootd.join import discovery
    from kbootd.token import BootstrapToken

    token = BootstrapToken.parse(TOKEN)

    def run() -> None:
        discovery.validate_cluster_info(data, token, pins, "https://10.0.0.10:6443")

    return run


# primitives

def duration_case(text: Any) -> Callable[[], Any]:
    from kbootd.duration import format_duration, parse_duration

    def run() -> None:
        format_duration(parse_duration(text, what="--fuzz-duration"))

    return run


def pin_case(text: str) -> Callable[[], Any]:
    from kbootd.pin import parse_pin

    return lambda: parse_pin(text, "--discovery-token-ca-cert-hash")


def token_case(text: str) -> Callable[[], Any]:
    from kbootd.token import BootstrapToken

    return lambda: BootstrapToken.parse(text, source="--token")


def durations() -> st.SearchStrategy[Any]:
    units = st.sampled_from(["ns", "us", "µs", "ms", "s", "m", "h", "", "d", "x"])
    nums = st.one_of(st.integers(0, 10**25).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                     st.sampled_from(["", ".", "1.", ".5", "-1", "+1", "1e20", "0x1"]))
    return st.one_of(st.lists(st.tuples(nums, units).map("".join), min_size=1, max_size=4).map("".join),
                     scalars(), st.text(max_size=20))


def pins() -> st.SearchStrategy[str]:
    hexes = st.text(alphabet="0123456789abcdefABCDEFgz", min_size=0, max_size=70)
    return st.one_of(st.tuples(st.sampled_from(["sha256:", "SHA256:", "sha1:", "", ":"]), hexes).map("".join),
                     st.text(max_size=80))


def tokens() -> st.SearchStrategy[str]:
    part = st.text(alphabet="abcdefz0189A.:-_\n ", max_size=20)
    return st.one_of(st.tuples(part, st.sampled_from([".", ":", ""]), part).map("".join), st.text(max_size=40))


# CLI

INIT_FLAGS = ["--apiserver-advertise-address", "--apiserver-bind-port", "--service-cidr", "--pod-network-cidr",
              "--service-dns-domain", "--kubernetes-version", "--token", "--token-ttl", "--node-name",
              "--cert-dir", "--apiserver-cert-extra-sans", "--control-plane-endpoint", "--image-repository",
              "--skip-phases", "--ignore-preflight-errors", "--cri-socket", "--feature-gates", "-v"]
JOIN_FLAGS = ["--token", "--discovery-token", "--tls-bootstrap-token", "--discovery-token-ca-cert-hash",
              "--node-name", "--discovery-timeout", "--cri-socket", "--skip-phases", "--discovery-file",
              "--ignore-preflight-errors"]
FLAG_VALUES = ["10.96.0.0/30", "10.96.0.0/12", "::/0", "1e20", "99999999999h", ".inf", "-1", "0", "70000",
               "bogus", "all", "a" * 80, "v1.32.0", "v99999999999999999999.1.1", "fz1abc:q9w8e7r6t5y4u3i2",
               TOKEN, PIN, "sha256:zz", "/../../x", "rel/dir", "", "preflight", "addon/bogus", "X=true",
               "unix:///x.sock", "http://127.0.0.1:1/x", "10.0.0.1", "[::1]"]


@st.composite
def cli_argvs(draw: st.DrawFn) -> tuple[str, list[str]]:
    """(kind, argv without --root): init/join dry-runs, config and token commands with hostile flags."""
    cmd = draw(st.sampled_from(["init", "join", "config-validate", "config-images", "token-create",
                                "ca-generate", "phase-init", "completion"]))
    flags = INIT_FLAGS if cmd in ("init", "phase-init", "config-images") else JOIN_FLAGS
    argv: list[str] = []
    for _ in range(draw(st.integers(0, 4))):
        f = draw(st.sampled_from(flags))
        val = draw(st.one_of(st.sampled_from(FLAG_VALUES), st.text(max_size=15)))
        argv += [f"{f}={val}"] if draw(st.booleans()) else [f, val]
    if cmd == "init":
        return cmd, ["init", "--dry-run", *argv]
    if cmd == "phase-init":
        return cmd, ["phase", "init", draw(st.sampled_from(["certs/ca", "kubeconfig/admin", "bogus", "cri"])),
                     "--dry-run", *[a for a in argv if "skip-phases" not in a]]
    if cmd == "join":
        return cmd, ["join", draw(st.sampled_from(["127.0.0.1:1", "[::1]:1", "x", ""])),
                     "--dry-run", "--discovery-timeout", "1s", *argv]
    if cmd == "config-images":
        return cmd, ["config", "images", "list", *[a for a in argv if "version" in a or "repository" in a]]
    if cmd == "token-create":  # the flags are checked before the (absent) kubeconfig is read
        return cmd, ["token", "create", draw(st.sampled_from([TOKEN, "x", ""])),
                     "--ttl", draw(st.sampled_from(FLAG_VALUES)), "--kubeconfig", "/nonexistent/admin.conf"]
    if cmd == "ca-generate":
        return cmd, ["ca", "generate", "--algorithm", "ECDSA-P256", "-o", "json",
                     "--validity", draw(st.one_of(st.sampled_from(FLAG_VALUES), st.text(max_size=12)))]
    if cmd == "completion":
        return cmd, ["completion", draw(st.sampled_from(["bash", "zsh", "fish", "x"]))]
    return cmd, ["config", "validate", "--config", "@CONFIG@"]


def cli_case(argv: list[str], root: str, config_text: str = "") -> Callable[[], int]:
    """main() with argv, into a scratch root; its exit code must be one of the table's."""
    from kbootd.cli.main import main

    def run() -> int:
        args = list(argv)
        if "@CONFIG@" in args:
            path = Path(root) / "kubeadm.yaml"
            path.write_text(config_text)
            args[args.index("@CONFIG@")] = str(path)
        elif args[0] in ("init", "join", "phase", "token"):
            args += ["--root", root]
        out, err = io.StringIO(), io.StringIO()
        try:
            with redirect_stdout(out), redirect_stderr(err):
                code = main(args)
        except SystemExit as e:  # argparse usage errors are exit 2 by argparse's rule; --help 0
            code = 3 if e.code == 2 else int(e.code or 0)
            err.write("")
        text = out.getvalue() + err.getvalue()
        # 1 is a general failure the command reported in one clean line (e.g. `phase init
        # kubeconfig/admin` before certs/ca); a bug is "internal error", checked below.
        if code not in (0, 1, 2, 3, 4, 5, 130):
            raise CliFinding(f"exit {code} for {args}: {err.getvalue()[-400:]}")
        if "Traceback" in text or "internal error" in text.lower() or "this is a bug" in text.lower():
            raise CliFinding(f"traceback/internal error for {args}: {err.getvalue()[-400:]}")
        if SECRET in err.getvalue():
            raise CliFinding(f"secret in stderr for {args}")
        return code

    return run


class CliFinding(Exception):
    pass


def cli_judge(argv: list[str], root: str, config_text: str, budget: float) -> Outcome:
    """The CLI case: main() returns a code of the README's table, never a traceback."""
    return judge(cli_case(argv, root, config_text), (), budget=budget)
