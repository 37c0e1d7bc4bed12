"""The one YAML reader's limits (issue 11 #7, and #8 for what the reader raises): alias bombs,
input size, nesting, complex keys and PyYAML's own ValueErrors end as exit 3 naming the source,
quickly and in little memory, for configs, kbootd.yaml, user-data and metadata alike."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from kbootd.config.yamlsrc import MAX_INPUT_BYTES, load_data, load_documents
from kbootd.errors import ValidationError


def bomb(levels: int) -> str:
    """The classic "billion laughs": 9 references per level (~400 bytes for 10^9 nodes)."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        refs = ",".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [9, 12])
def test_a_billion_laughs_is_refused_at_once(levels: int) -> None:
    text = bomb(levels)
    assert len(text) < 800
    t = time.monotonic()
    with pytest.raises(ValidationError, match=r"^cfg\.yaml:\d+: invalid YAML: more than 100000 values once "
                                              r"aliases are expanded"):
        load_documents(text, "cfg.yaml")
    assert time.monotonic() - t < 2


def test_modest_aliases_still_work() -> None:
    docs = load_documents("base: &b {x: 1}\na: *b\nb: *b\n", "cfg.yaml")
    assert docs[0].data == {"base": {"x": 1}, "a": {"x": 1}, "b": {"x": 1}}


@pytest.mark.parametrize("text,message", [
    ("a: &a [*a]\n", "an alias refers to the node that contains it"),
    ("? [a, b]\n: c\n", "a mapping key must be a plain value"),
    ("? {a: 1}\n: c\n", "a mapping key must be a plain value"),
    ("a: " + "[" * 200 + "]" * 200 + "\n", "nested deeper than 100 levels"),
    ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested"),
    ("a: " + "9" * 5000 + "\n", "cannot be read as the integer"),
    ("a: !!int 0o777x\n", "cannot be read as the integer"),
    ("a: !!float .nanx\n", "cannot be read as the integer"),
    ("a: !!float\n", "cannot be read as the integer"),  # found by tests/test_fuzz.py: IndexError
    ("a: !!int\n", "cannot be read as the integer"),
    ("a: !!timestamp 2024-13-45\n", "cannot be read as the integer"),
    ("token: !!int abcdef.0123456789abcdef\n", "cannot be read as the integer"),
])
def test_hostile_yaml_is_a_validation_error_naming_the_source(text: str, message: str) -> None:
    for load in (load_documents, load_data):
        with pytest.raises(ValidationError) as e:
            load(text, "src.yaml")
        assert str(e.value).startswith("src.yaml"), e.value
        assert message in str(e.value)
        assert "0123456789abcdef" not in str(e.value)


def test_input_size_is_capped() -> None:
    with pytest.raises(ValidationError, match="src.yaml: larger than 4 MiB"):
        load_documents("a: b\n" * (MAX_INPUT_BYTES // 5 + 1), "src.yaml")


# --- end to end: the CLI and the daemon's inputs ---------------------------------------------------

def test_cli_config_dev_zero_and_bomb_exit_3(tmp_path: Path, run_cli) -> None:  # noqa: ANN001
    t = time.monotonic()
    code, _, err = run_cli("init", "--config", "/dev/zero", "--dry-run")
    assert code == 3 and "--config: /dev/zero: larger than 4 MiB" in err, err
    cfg = tmp_path / "bomb.yaml"
    cfg.write_text(bomb(10))
    code, _, err = run_cli("init", "--config", str(cfg), "--dry-run")
    assert code == 3 and f"{cfg}:" in err and "aliases are expanded" in err, err
    code, _, err = run_cli("join", "--config", str(cfg), "--dry-run")
    assert code == 3, err
    assert time.monotonic() - t < 10


@pytest.mark.parametrize("path,prefix", [
    ("/etc/kbootd/kbootd.yaml", ""),
    ("/etc/kbootd/kbootd.d/10-x.yaml", ""),
    ("/var/lib/cloud/instance/cloud-config.txt", "kbootd:\n  "),
])
def test_daemon_inputs_refuse_bombs_and_huge_files(root: Path, path: str, prefix: str) -> None:
    from kbootd.daemon.inputs import gather
    from kbootd.hostio import Host
    from kbootd.paths import Paths

    host = Host(Paths.rooted(root))
    real = root / path.lstrip("/")
    real.parent.mkdir(parents=True, exist_ok=True)
    body = bomb(10)
    text = body if not prefix else "kbootd:\n" + "".join("  " + line + "\n" for line in body.splitlines())
    real.write_text(text)
    os.chmod(real, 0o600)
    with pytest.raises(ValidationError, match="aliases are expanded"):
        gather(host)
    real.write_bytes(b"a: b\n" * (MAX_INPUT_BYTES // 5 + 1))
    with pytest.raises(ValidationError, match="larger than"):
        gather(host)


@pytest.mark.parametrize("path", ["/run/cloud-init/instance-data-sensitive.json",
                                  "/run/cloud-init/combined-cloud-config.json"])
def test_daemon_json_inputs_nested_deeply_or_huge_are_exit_3(root: Path, path: str) -> None:
    from kbootd.daemon.inputs import gather
    from kbootd.hostio import Host
    from kbootd.paths import Paths

    real = root / path.lstrip("/")
    real.parent.mkdir(parents=True, exist_ok=True)
    for text in ('{"ds": ' + "[" * 100_000 + "]" * 100_000 + "}", '{"a": ' + "9" * 5000 + "}",
                 " " * (MAX_INPUT_BYTES + 1)):
        real.write_text(text)
        os.chmod(real, 0o600)
        with pytest.raises(ValidationError) as e:
            gather(Host(Paths.rooted(root)))
        assert path in str(e.value)


@pytest.mark.parametrize("text", ["[" * 100_000, "[{" * 3_000, "a: " + "{b: " * 500, "- [" + "[" * 200 + "]" * 201])
def test_deep_flow_nesting_is_refused_before_pyyaml_scans_it(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """PyYAML's scanner is quadratic in flow nesting (3,000 levels took seconds, a fuzz "hang"):
    such text never reaches it."""
    import yaml

    def never(*a: object, **kw: object) -> None:
        raise AssertionError("PyYAML was handed deeply nested flow text")

    monkeypatch.setattr(yaml.SafeLoader, "__init__", never)
    with pytest.raises(ValidationError, match=r"^kbootd\.yaml:1: invalid YAML: nested deeper than 100 levels$"):
        load_data(text, "kbootd.yaml")


def test_flow_collections_within_the_depth_and_brackets_in_strings_still_load() -> None:
    text = "a: " + "[" * 90 + "1" + "]" * 90 + "\nb: '" + "[" * 60 + "'\nc: [" + ", ".join(["[1]"] * 300) + "]\n"
    (data,) = load_data(text, "x")
    assert data["b"] == "[" * 60 and len(data["c"]) == 300


def test_configs_from_the_cluster_go_through_the_reader_too() -> None:
    """kubeadm-config and kubelet-config come from an API server: a bomb there is refused at
    once, on join's fallback path too, never expanded by a second, unguarded parse."""
    from kbootd import kubelet
    from kbootd.errors import KbootdError
    from kbootd.join.phases import cluster_configuration

    text = bomb(12)
    t = time.monotonic()
    with pytest.raises(KbootdError, match="kube-system/kubeadm-config: cannot read the ClusterConfiguration"):
        cluster_configuration(text, lambda msg: None)
    with pytest.raises(ValidationError, match=r"kubelet-config:\d+: invalid YAML: more than 100000 values"):
        kubelet.parse_kubelet_configuration(text, "kubelet-config")
    assert time.monotonic() - t < 5
