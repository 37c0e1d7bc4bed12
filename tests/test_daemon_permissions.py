"""Permission checks on parsed values (issue 11 #4): a source that provides a token must not be
readable by others; a source that provides a token or any trust setting (caCertHashes,
unsafeSkipCAVerification, endpoint) must be root-owned and not group- or world-writable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kbootd.daemon import document
from kbootd.daemon.inputs import Gathered, Source
from kbootd.errors import ValidationError
from kbootd.hostio import Host
from kbootd.paths import Paths

DOC = "apiVersion: kbootd.io/v1alpha1\nkind: KbootdConfiguration\n"
PIN = "sha256:" + "0b5c07da32772eb431ea1ba6f4614eab673b8c42a313c767bd3f31f49da01d2d"
# One token, spelled so that no raw-text pattern sees it; YAML reads each as abcdef.0123456789abcdef.
ESCAPED = [r'"abcdef\x2e0123456789abcdef"', r'"abcdef\u002e0123456789abcdef"',
           '"abcdef.01234567\\\n  89abcdef"', r'"\x61bcdef.0123456789abcdef"']


@pytest.fixture
def host(root: Path) -> Host:
    return Host(Paths.rooted(root))


def put(root: Path, path: str, text: str, mode: int) -> None:
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    os.chmod(p, mode)


def load(host: Host) -> document.Document:
    return document.load(host)[0]


@pytest.mark.parametrize("spelled", ESCAPED)
def test_an_escaped_token_in_a_readable_kbootd_yaml_is_refused(root: Path, host: Host, spelled: str) -> None:
    put(root, "/etc/kbootd/kbootd.yaml", DOC + f"role: worker\ntoken: {spelled}\n", 0o644)
    with pytest.raises(ValidationError, match="holds a bootstrap token but is readable by others"):
        load(host)
    os.chmod(root / "etc/kbootd/kbootd.yaml", 0o600)
    assert load(host).token.id == "abcdef"


@pytest.mark.parametrize("spelled", ESCAPED)
def test_an_escaped_token_in_a_readable_kubeadm_config_file_is_refused(root: Path, host: Host, spelled: str) -> None:
    put(root, "/etc/kbootd/kbootd.yaml", DOC + "role: worker\nkubeadmConfigFile: /etc/kbootd/join.yaml\n", 0o644)
    put(root, "/etc/kbootd/join.yaml", "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n"
        f"discovery:\n  bootstrapToken:\n    token: {spelled}\n    apiServerEndpoint: 10.0.0.10:6443\n"
        "    unsafeSkipCAVerification: true\n", 0o644)
    doc = load(host)
    with pytest.raises(ValidationError, match="join.yaml: holds a bootstrap token but is readable by others"):
        document._embedded(doc, host)


@pytest.mark.parametrize("setting", [f"caCertHashes: [{PIN}]", "unsafeSkipCAVerification: true",
                                     "endpoint: 10.0.0.10:6443",
                                     "kubeadm:\n  apiVersion: kubeadm.k8s.io/v1beta4\n  kind: JoinConfiguration\n"
                                     "  discovery: {bootstrapToken: {apiServerEndpoint: 10.6.6.6:6443}}"])
@pytest.mark.parametrize("mode", [0o666, 0o664, 0o646, 0o620])
def test_trust_settings_from_a_writable_file_are_refused(root: Path, host: Host, setting: str, mode: int) -> None:
    put(root, "/etc/kbootd/kbootd.yaml", DOC + f"role: worker\n{setting}\n", mode)
    with pytest.raises(ValidationError, match="gives trust settings .* can be written by others than root"):
        load(host)
    os.chmod(root / "etc/kbootd/kbootd.yaml", 0o644)  # readable is fine: pins and endpoints are public
    load(host)


def test_a_writable_file_without_trust_settings_is_accepted(root: Path, host: Host) -> None:
    put(root, "/etc/kbootd/kbootd.yaml", DOC + "role: worker\nnodeName: w-1\n", 0o666)
    assert load(host).node_name == "w-1"


def test_trust_or_token_from_a_file_not_owned_by_root_is_refused() -> None:
    host = Host(Paths.rooted("/"))
    for data in ({"endpoint": "10.0.0.10:6443"}, {"token": "abcdef.0123456789abcdef"}):
        s = Source("/etc/kbootd/kbootd.yaml", "/etc/kbootd/kbootd.yaml", data, mode=0o600, uid=1000)
        with pytest.raises(ValidationError, match="others than root"):
            document.merge(Gathered([s], []), host)
    ok = Source("/etc/kbootd/kbootd.yaml", "/etc/kbootd/kbootd.yaml", {"nodeName": "w-1"}, mode=0o600, uid=1000)
    assert document.merge(Gathered([ok], []), host).node_name == "w-1"


@pytest.mark.parametrize("data,expected", [
    ({"token": "x"}, (True, False)),
    ({"a": {"b": ["abcdef.0123456789abcdef"]}}, (True, False)),
    ({"discovery": {"bootstrapToken": {"caCertHashes": [PIN]}}}, (False, True)),
    ({"discoveryTokenUnsafeSkipCAVerification": False}, (False, False)),
    ({"nodeRegistration": {"name": "n"}}, (False, False)),
])
def test_sensitive_values(data, expected) -> None:  # noqa: ANN001
    assert document.sensitive_values(data) == expected
