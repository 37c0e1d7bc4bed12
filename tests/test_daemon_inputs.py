import json
import os

import pytest

from kbootd.daemon.inputs import gather, metadata_maps
from kbootd.errors import ValidationError
from kbootd.hostio import Host
from kbootd.paths import Paths

DOC = "apiVersion: kbootd.io/v1alpha1\nkind: KbootdConfiguration\n"


@pytest.fixture
def host(root):
    return Host(Paths.rooted(root))


def put(host, path, text, mode=0o600):
    real = host.paths.at(path)
    real.parent.mkdir(parents=True, exist_ok=True)
    real.write_text(text)
    os.chmod(real, mode)


def test_nothing_present_lists_every_place_looked(host):
    g = gather(host)
    assert g.sources == []
    text = g.looked_text()
    for p in ("/etc/kbootd/kbootd.yaml (absent)", "/etc/kbootd/kbootd.d/*.yaml (0 found)",
              "/run/cloud-init/combined-cloud-config.json (absent)",
              "/var/lib/cloud/instance/cloud-config.txt (absent)",
              "/run/cloud-init/instance-data-sensitive.json (absent)"):
        assert p in text


def test_sources_in_precedence_order_with_lines(host):
    put(host, "/etc/kbootd/kbootd.yaml", DOC + "role: worker\n")
    put(host, "/etc/kbootd/kbootd.d/20-b.yaml", DOC + "nodeName: b\n")
    put(host, "/etc/kbootd/kbootd.d/10-a.yaml", DOC + "nodeName: a\n")
    put(host, "/etc/kbootd/kbootd.d/notes.txt", "ignored")
    put(host, "/run/cloud-init/combined-cloud-config.json", json.dumps({"kbootd": {"role": "node"}}))
    put(host, "/run/cloud-init/instance-data-sensitive.json",
        json.dumps({"ds": {"meta_data": {"kbootd-endpoint": "10.0.0.10:6443"}}}))
    g = gather(host)
    assert [s.path for s in g.sources] == [
        "/etc/kbootd/kbootd.yaml", "/etc/kbootd/kbootd.d/10-a.yaml", "/etc/kbootd/kbootd.d/20-b.yaml",
        "/run/cloud-init/combined-cloud-config.json", "/run/cloud-init/instance-data-sensitive.json"]
    assert g.sources[0].where["role"] == "/etc/kbootd/kbootd.yaml:3: role"
    assert g.sources[4].where["endpoint"] == \
        "/run/cloud-init/instance-data-sensitive.json: ds.meta_data['kbootd-endpoint']"


@pytest.mark.parametrize("combined,cloud_config,expect", [
    ({"kbootd": {"role": "worker"}}, "#cloud-config\nkbootd: {role: master}\n", "combined-cloud-config.json"),
    (None, "#cloud-config\nkbootd:\n  role: master\n", "cloud-config.txt"),
    # 23.3+ writes both: the combined file decides, even without the key (same user-data).
    ({"runcmd": []}, "#cloud-config\nkbootd: {role: master}\n", None),
])
def test_user_data_key_from_the_newest_file_present(host, combined, cloud_config, expect):
    if combined is not None:
        put(host, "/run/cloud-init/combined-cloud-config.json", json.dumps(combined))
    put(host, "/var/lib/cloud/instance/cloud-config.txt", cloud_config)
    g = gather(host)
    names = [s.name for s in g.sources]
    if expect is None:
        assert names == []
        assert "(no such key)" in g.looked_text()
    else:
        assert len(names) == 1 and expect in names[0] and "`kbootd:` key" in names[0]


@pytest.mark.parametrize("path,text,msg", [
    ("/run/cloud-init/combined-cloud-config.json", "{not json", "cannot parse"),
    ("/run/cloud-init/combined-cloud-config.json", json.dumps({"kbootd": "worker"}), "expected a mapping"),
    ("/var/lib/cloud/instance/cloud-config.txt", "kbootd: [a", "cannot parse"),
    ("/run/cloud-init/instance-data-sensitive.json", "[", "not valid JSON"),
    ("/etc/kbootd/kbootd.yaml", "- a\n- b\n", "expected a mapping"),
    ("/etc/kbootd/kbootd.yaml", DOC + "---\n" + DOC, "expected one kbootd document"),
    ("/etc/kbootd/kbootd.yaml", "role: [", "invalid YAML"),
])
def test_bad_files_are_named(host, path, text, msg):
    put(host, path, text)
    with pytest.raises(ValidationError) as e:
        gather(host)
    assert path in str(e.value) and msg in str(e.value)


# instance-data-sensitive.json `ds` as each datasource lays it out
EC2 = {"meta-data": {"instance-id": "i-1", "tags": {"instance": {
    "kbootd-role": "worker", "kbootd-token": "abcdef.0123456789abcdef", "Name": "w"}}}}
OPENSTACK = {"meta_data": {"uuid": "u", "meta": {"kbootd-role": "worker", "kbootd-endpoint": "10.0.0.10"}}}
GCE = {"meta_data": {"instance-id": "1", "instance-data": json.dumps(
    {"kbootd-role": "worker", "kbootd-ca-cert-hash": "sha256:" + "a" * 64, "ssh-keys": "x"})}}
NOCLOUD = {"meta_data": {"instance-id": "i", "kbootd_role": "worker", "kbootd-token": "abcdef.0123456789abcdef"}}


@pytest.mark.parametrize("ds,expect,where", [
    (EC2, {"role": "worker", "token": "abcdef.0123456789abcdef"}, 'ds["meta-data"].tags.instance'),
    (OPENSTACK, {"role": "worker", "endpoint": "10.0.0.10"}, "ds.meta_data.meta"),
    (GCE, {"role": "worker", "caCertHash": "sha256:" + "a" * 64}, 'ds.meta_data["instance-data"]'),
    (NOCLOUD, {"role": "worker", "token": "abcdef.0123456789abcdef"}, "ds.meta_data"),
])
def test_metadata_per_datasource(host, ds, expect, where):
    put(host, "/run/cloud-init/instance-data-sensitive.json", json.dumps({"ds": ds, "v1": {}}))
    g = gather(host)
    (src,) = g.sources
    assert src.data == expect
    assert all(where in w for w in src.where.values())
    assert src.holds_secret == ("token" in expect)


def test_world_readable_instance_data_is_never_read(host):
    put(host, "/run/cloud-init/instance-data.json",
        json.dumps({"ds": {"meta_data": {"kbootd-role": "worker"}}}), 0o644)
    assert gather(host).sources == []


def test_metadata_maps_ignores_odd_shapes():
    assert metadata_maps(None) == []
    assert metadata_maps({"meta_data": "x"}) == []
    assert [b for b, _ in metadata_maps({"meta_data": {"instance-data": "{bad"}})] == ["ds.meta_data"]


def test_unreadable_file_is_an_input_error(host, monkeypatch):
    put(host, "/etc/kbootd/kbootd.yaml", DOC)

    def denied(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(type(host.paths.at("/x")), "read_bytes", denied)
    monkeypatch.setattr(type(host.paths.at("/x")), "open", lambda self, *a, **kw: denied(self))
    with pytest.raises(ValidationError) as e:
        gather(host)
    assert "/etc/kbootd/kbootd.yaml" in str(e.value) and "permission denied" in str(e.value)
