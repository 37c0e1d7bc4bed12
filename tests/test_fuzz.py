"""The fuzz suite's short profile (issue 11): every input surface, property-based.

Property, for every generated input: the code succeeds, or raises a KbootdError with exit code 3
(4 for trust material; a retried TransientError for what a server sent) whose message names the
source; never another exception and never a hang (each case runs under a SIGALRM budget). The
CLI returns an exit code of the table, never a traceback nor an "internal error".

KBOOTD_FUZZ=long multiplies the examples by 20 (bench/fuzz.py is the counted long run).
Cases that failed before their fix are kept as @example.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests import fuzzing as fz

LONG = os.environ.get("KBOOTD_FUZZ") == "long"
settings.register_profile("kbootd-short", deadline=None, database=None, derandomize=True, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                 HealthCheck.filter_too_much])
settings.register_profile("kbootd-long", parent=settings.get_profile("kbootd-short"), derandomize=False)
PROFILE = settings.get_profile("kbootd-long" if LONG else "kbootd-short")
CA = fz.ca_pem()


def n(short: int) -> int:
    return short * 20 if LONG else short


def holds(out: fz.Outcome) -> None:
    assert out.kind in ("ok", "clean"), out.detail


@settings(PROFILE, max_examples=n(120))
@given(fz.config_texts())
@example("apiVersion: kubeadm.k8s.io/v1beta4\nkind: {a: 1}\n")
@example("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nbootstrapTokens:\n- ttl: .inf\n")
@example("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1." + "9" * 5000 + ".0\n")
@example("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nskipPhases: [bogus]\n")
def test_config_files(text: str) -> None:
    holds(fz.judge(fz.config_case(text), fz.CONFIG_NAMES))


@settings(PROFILE, max_examples=n(60))
@given(fz.daemon_inputs())
@example(fz.DaemonInput({"/etc/kbootd/kbootd.yaml": fz.dump({**fz.KBOOTD_BASE, "kubeadm": {
    "apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "JoinConfiguration", "discovery": ["a"]}}) or ""}))
@example(fz.DaemonInput({"/run/cloud-init/instance-data-sensitive.json": '{"ds": ' + "[" * 100_000 + "}"}))
def test_daemon_inputs(inp: fz.DaemonInput) -> None:
    holds(fz.judge(fz.daemon_case(inp), fz.DAEMON_NAMES))


@settings(PROFILE, max_examples=n(150))
@given(fz.state_texts())
@example('{"version": 1, "status": "running", "failures": null}')
@example('{"version": 1, "status": "running", "phases_done": null}')
@example("[" * 100_000)
def test_state_json(text: str) -> None:
    holds(fz.judge(fz.state_case(text), ("state.json",)))


@settings(PROFILE, max_examples=n(100))
@given(fz.kubeconfig_texts(CA))
def test_kubeconfigs(text: str) -> None:
    holds(fz.judge(fz.kubeconfig_case(text), ("/fuzz/admin.conf",)))


@settings(PROFILE, max_examples=n(80))
@given(fz.cluster_infos(CA))
@example({"kubeconfig": "\udfff", "jws-kubeconfig-abcdef": "eyJhbGciOiJIUzI1NiIsImtpZCI6ImFiY2RlZiJ9..x"})
@example({"kubeconfig": "a", "jws-kubeconfig-abcdef": "eyJhbGciOiJIUzI1NiIsImtpZCI6ImFiY2RlZiJ9..\ud800"})
def test_cluster_info(data: dict[str, Any]) -> None:
    holds(fz.judge(fz.cluster_info_case(data), ("https://10.0.0.10:6443", "cluster-info"), codes=(4,),
                   transient_ok=True))


@settings(PROFILE, max_examples=n(300))
@given(fz.durations())
@example("99999999999h")
@example(".inf")
@example(1e20)
@example(10**400)
@example("9" * 5000)
def test_durations(value: Any) -> None:
    holds(fz.judge(fz.duration_case(value), ("--fuzz-duration",)))


@settings(PROFILE, max_examples=n(200))
@given(fz.pins())
def test_pins(text: str) -> None:
    holds(fz.judge(fz.pin_case(text), ("--discovery-token-ca-cert-hash",)))


@settings(PROFILE, max_examples=n(200))
@given(fz.tokens())
def test_tokens(text: str) -> None:
    holds(fz.judge(fz.token_case(text), ("--token",), secret_check=True))


@settings(PROFILE, max_examples=n(60))
@given(fz.cli_argvs(), st.data())
@example(("init", ["init", "--dry-run", "--service-cidr", "10.96.0.0/30"]), None)
@example(("init", ["init", "--dry-run", "--token-ttl", "99999999999h"]), None)
def test_cli(tmp_path_factory: pytest.TempPathFactory, value: tuple[str, list[str]], data: Any) -> None:
    text = data.draw(fz.config_texts()) if data is not None and value[0] == "config-validate" else ""
    root = str(tmp_path_factory.mktemp("root"))
    holds(fz.cli_judge(value[1], root, text, budget=20.0))


def test_the_judge_catches_what_it_must() -> None:
    """The property can fail: a bare exception, a hang, a wrong exit code, a message naming no source."""
    import time

    from kbootd.errors import SecurityError, ValidationError

    def boom() -> None:
        raise TypeError("x")

    def slow() -> None:
        time.sleep(5)

    def wrong_code() -> None:
        raise SecurityError("--token: x")

    def nameless() -> None:
        raise ValidationError("something is wrong")

    assert fz.judge(boom, ("a",)).kind == "unexpected"
    assert fz.judge(slow, ("a",), budget=0.2).kind == "hang"
    assert fz.judge(wrong_code, ("--token",)).kind == "unexpected"
    assert fz.judge(nameless, ("--token",)).kind == "unexpected"
    assert fz.judge(lambda: None, ()).kind == "ok"
