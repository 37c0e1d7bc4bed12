"""The preflight runner: severities, ignores, not-checked facts, one error for all (kbootd/preflight/runner.py)."""

from __future__ import annotations

import pytest

from kbootd.errors import KbootdError, PreflightError
from kbootd.preflight.runner import ERROR, WARNING, Check, NotChecked, evaluate, run_checks
from tests.preflight_fakes import FakeFacts, context


def fails(*msgs):
    return lambda ctx, facts: list(msgs)


def raises(exc):
    def fn(ctx, facts):
        raise exc
    return fn


@pytest.mark.parametrize(("check", "ignore", "errors", "warnings"), [
    (Check("Port-6443", fails("Port 6443 is in use"), ERROR), (), [("Port-6443", "Port 6443 is in use")], []),
    (Check("Port-6443", fails("Port 6443 is in use"), ERROR), ("Port-6443",), [],
     [("Port-6443", "Port 6443 is in use")]),
    (Check("Port-6443", fails("x"), ERROR), ("port-6443",), [], [("Port-6443", "x")]),
    (Check("Port-6443", fails("x"), ERROR), ("PORT-6443",), [], [("Port-6443", "x")]),
    (Check("Port-6443", fails("x"), ERROR), ("all",), [], [("Port-6443", "x")]),
    (Check("Port-6443", fails("x"), ERROR), ("ALL",), [], [("Port-6443", "x")]),
    (Check("Port-6443", fails("x"), ERROR), ("Port-10250",), [("Port-6443", "x")], []),
    (Check("Swap", fails("swap on"), WARNING), (), [], [("Swap", "swap on")]),
    (Check("Swap", fails(), WARNING), (), [], []),
    (Check("Mem", raises(KbootdError("/proc/meminfo: permission denied")), ERROR), (),
     [("Mem", "/proc/meminfo: permission denied")], []),
    (Check("Mem", raises(PermissionError(13, "Permission denied")), ERROR), (),
     [("Mem", "[Errno 13] Permission denied")], []),
    (Check("KubeletVersion", raises(NotChecked("cannot ask", warn=True)), ERROR), (), [],
     [("KubeletVersion", "cannot ask")]),
])
def test_severity_and_ignores(root, check, ignore, errors, warnings):
    out = evaluate(context(root, ignore=ignore), [check], FakeFacts())
    assert (out.errors, out.warnings) == (errors, warnings)


def test_every_check_runs_and_every_error_is_raised_at_once(root):
    ctx = context(root)
    checks = [Check("A", fails("a1", "a2"), ERROR), Check("B", fails("b"), WARNING), Check("C", fails("c"), ERROR)]
    with pytest.raises(PreflightError) as e:
        run_checks(ctx, checks, FakeFacts())
    assert str(e.value) == "[preflight] Some fatal errors occurred:\n\t[ERROR A]: a1\n\t[ERROR A]: a2\n\t[ERROR C]: c"
    assert e.value.exit_code == 2
    assert "you can make a check non-fatal with `--ignore-preflight-errors=...`" in e.value.hint
    assert e.value.hint.endswith("(here: --ignore-preflight-errors=A,C)")
    assert "\t[WARNING B]: b\n" in ctx.reporter.text()


def test_warnings_print_like_kubeadm_and_do_not_fail(root):
    ctx = context(root, ignore=("Port-6443",))
    checks = [Check("Swap", fails("swap is on"), WARNING), Check("Port-6443", fails("Port 6443 is in use"), ERROR)]
    out = run_checks(ctx, checks, FakeFacts())
    assert out.errors == []
    assert ctx.reporter.stdout.getvalue() == "\t[WARNING Swap]: swap is on\n\t[WARNING Port-6443]: Port 6443 is in use\n"


def test_not_checked_facts_are_listed_once_per_reason(root):
    ctx = context(root)
    checks = [Check("Port-6443", raises(NotChecked("off host")), ERROR),
              Check("SystemVerification", raises(NotChecked("off host")), ERROR),
              Check("SystemVerification", raises(NotChecked("off host")), WARNING),
              Check("HTTPProxy", raises(NotChecked("no address")), WARNING)]
    out = run_checks(ctx, checks, FakeFacts())
    assert out.not_checked == {"off host": ["Port-6443", "SystemVerification"], "no address": ["HTTPProxy"]}
    assert ctx.reporter.events == [("info", "preflight", "Not checked (off host): Port-6443, SystemVerification"),
                                   ("info", "preflight", "Not checked (no address): HTTPProxy")]


def test_a_bug_in_a_check_is_not_hidden(root):
    with pytest.raises(ZeroDivisionError):
        evaluate(context(root), [Check("Bug", raises(ZeroDivisionError()), ERROR)], FakeFacts())
