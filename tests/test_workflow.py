import pytest

from kbootd import workflow
from kbootd.context import make_context
from kbootd.errors import PhaseError, PreflightError, ValidationError
from kbootd.phases import WORKFLOWS
from kbootd.report import RecordingReporter
from kbootd.workflow import Phase

CALLS: list[str] = []


def rec_a(ctx):
    CALLS.append("a")


def rec_b1(ctx):
    CALLS.append("b/1")


def rec_b2(ctx):
    CALLS.append("b/2")


def fail(ctx):
    raise PreflightError("port 6443 is in use")


def skip_b2(ctx):
    return "not needed here"


WF = (
    Phase("a", "first", run=rec_a),
    Phase("b", "parent", children=(
        Phase("1", "child one", run=rec_b1),
        Phase("2", "child two", run=rec_b2, skip_if=skip_b2),
    )),
    Phase("c", "fails", run=fail),
)


@pytest.fixture
def ctx(root):
    CALLS.clear()
    return make_context(root=str(root), reporter=RecordingReporter())


def test_runs_in_order_with_skip_if_and_reports_failure_with_its_exit_code(ctx):
    with pytest.raises(PhaseError) as e:
        workflow.run(WF, ctx)
    assert CALLS == ["a", "b/1"]
    assert e.value.exit_code == 2
    assert str(e.value) == "error execution phase c: port 6443 is in use"
    assert ("skipped", "b/2", "not needed here") in ctx.reporter.events
    assert ("failed", "c", "port 6443 is in use") in ctx.reporter.events
    assert ctx.completed == ["a", "b/1", "b"]


def test_only_one_phase(ctx):
    workflow.run(WF, ctx, only="b/1")
    assert CALLS == ["b/1"]


def test_skip_phases(ctx):
    workflow.run(WF, ctx, skip=("c", "b"))
    assert CALLS == ["a"]


@pytest.mark.parametrize("kw", [{"only": "nope"}, {"skip": ("b/3",)}])
def test_unknown_phase_names_are_errors_listing_phases(ctx, kw):
    with pytest.raises(ValidationError, match="phases are: a, b, b/1, b/2, c"):
        workflow.run(WF, ctx, **kw)


def test_on_phase_done_hook_sees_each_phase(ctx):
    seen: list[str] = []
    ctx.on_phase_done = seen.append
    workflow.run(WF, ctx, only="b")
    assert seen == ["b/1", "b"]


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_declared_phases_hold_callables_and_unique_paths(name):
    rows = workflow.all_phases(WORKFLOWS[name])
    for path, p in rows:
        for fn in (p.run, p.skip_if):
            assert fn is None or callable(fn), path
        assert p.run is not None or p.children, f"{path}: neither runs nor has sub-phases"
    assert len({path for path, _ in rows}) == len(rows)


def test_certs_and_kubeconfig_sub_phases_come_from_their_tables():
    from kbootd import kubeconfig
    from kbootd.phases import INIT
    from kbootd.pki import certlist

    certs = workflow.find(INIT, "certs", "phase")
    assert [(p.name, p.summary) for p in certs.children] == \
        [(s.name, s.summary) for s in certlist.CERTS] + [(certlist.SA_NAME, certlist.SA_SUMMARY)]
    assert [p.name for p in certs.children if p.skip_if] == [s.name for s in certlist.CERTS if s.local_etcd_only]
    kcs = workflow.find(INIT, "kubeconfig", "phase")
    assert [(p.name, p.summary) for p in kcs.children] == [(k.name, k.summary) for k in kubeconfig.KUBECONFIGS]
