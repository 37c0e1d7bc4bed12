import json
import os

import pytest

from kbootd.daemon import state as st
from kbootd.errors import ValidationError
from kbootd.hostio import Host
from kbootd.paths import Paths


@pytest.fixture
def host(root):
    return Host(Paths.rooted(root))


def test_absent_state_is_none(host):
    assert st.load(host) is None


def test_round_trip_is_atomic_and_private(host):
    s = st.State(role="worker", fingerprint="sha256:x", status=st.RUNNING, phases_done=["preflight"])
    st.save(host, s, now=5.0)
    real = host.paths.at(host.paths.state_file)
    assert real.stat().st_mode & 0o777 == 0o600
    assert real.parent.stat().st_mode & 0o777 == 0o700
    assert not [p for p in real.parent.iterdir() if p.name != "state.json"]  # no temp file left
    back = st.load(host)
    assert back == s and back.updated_at == 5.0 and not back.done


def test_unknown_keys_from_a_newer_kbootd_are_ignored(host):
    real = host.paths.at(host.paths.state_file)
    real.parent.mkdir(parents=True)
    real.write_text(json.dumps({"version": 1, "status": "done", "role": "worker", "future": 1}))
    assert st.load(host).done


@pytest.mark.parametrize("text,msg", [("{", "not valid JSON"), ('{"version": 9}', "unknown state format"),
                                      ("[]", "unknown state format")])
def test_damaged_state_says_how_to_recover(host, text, msg):
    real = host.paths.at(host.paths.state_file)
    real.parent.mkdir(parents=True)
    real.write_text(text)
    with pytest.raises(ValidationError) as e:
        st.load(host)
    assert msg in str(e.value) and "kbootd reset" in str(e.value) and host.paths.state_file in str(e.value)


def test_remove_for_reset(host):
    st.save(host, st.State(status=st.DONE))
    assert st.remove(host) and st.load(host) is None and not st.remove(host)


@pytest.mark.parametrize("failures,delay", [(0, 0), (1, 10), (2, 20), (3, 40), (5, 160), (6, 300), (40, 300),
                                           (1025, 300), (10**6, 300), (10**30, 300)])
def test_backoff(failures, delay):
    assert st.backoff_delay(failures) == delay


def test_state_never_holds_a_secret_field():
    assert not {f for f in st.State.__dataclass_fields__ if "token" in f or "secret" in f}
    assert os.path.basename(Paths.rooted("/").state_file) == "state.json"


# Found by the fuzz suite (tests/fuzzing.py): each was a TypeError or RecursionError (exit 1,
# restarted by the unit every few seconds forever) before; now exit 3 naming file and field.
@pytest.mark.parametrize("change,field", [
    ({"failures": None}, "failures"), ({"failures": [1]}, "failures"), ({"failures": True}, "failures"),
    ({"failures": -1}, "failures"), ({"phases_done": None}, "phases_done"), ({"phases_done": [1]}, "phases_done"),
    ({"status": {"a": 1}}, "status"), ({"status": "bogus"}, "status"), ({"role": "master"}, "role"),
    ({"updated_at": "x"}, "updated_at"), ({"started_at": 1e300}, "started_at"), ({"node_name": 5}, "node_name"),
    ({"last_error": ["x"]}, "last_error"), ({"version": True}, "unknown state format"),
])
def test_a_mistyped_field_is_exit_3_naming_the_file_and_field(host, change, field):
    real = host.paths.at(host.paths.state_file)
    real.parent.mkdir(parents=True)
    data = {"version": 1, "status": "running", "role": "worker", "phases_done": ["discovery"], "failures": 2}
    real.write_text(json.dumps({**data, **change}))
    with pytest.raises(ValidationError) as e:
        st.load(host)
    assert e.value.exit_code == 3
    assert host.paths.state_file in str(e.value) and field in str(e.value) and "kbootd reset" in str(e.value)


def test_deeply_nested_state_is_exit_3_not_a_recursion_error(host):
    real = host.paths.at(host.paths.state_file)
    real.parent.mkdir(parents=True)
    real.write_text("[" * 100_000)
    with pytest.raises(ValidationError, match="not valid JSON"):
        st.load(host)
