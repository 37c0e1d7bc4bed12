"""Where ../shared/ (the specification, fixtures and e2e recipe) is: beside the checkout in CI,
/work/shared on developer machines, or $KBOOTD_SHARED."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _find() -> Path:
    candidates = [Path(os.environ["KBOOTD_SHARED"])] if os.environ.get("KBOOTD_SHARED") else []
    candidates += [Path(__file__).resolve().parents[2] / "shared", Path("/work/shared")]
    for c in candidates:
        if (c / "fixtures").is_dir():
            return c
    return candidates[0]


SHARED = _find()
FIXTURES = SHARED / "fixtures"
INIT_BASIC = FIXTURES / "kubeadm" / "init-basic"


def _python_systemd_missing() -> str | None:
    try:
        import systemd.daemon  # noqa: F401
        import systemd.journal  # noqa: F401
    except ImportError as e:
        return str(e) or "ImportError"
    return None


# Tests of the journald and sd_notify paths through python-systemd (Debian: python3-systemd;
# pip: kbootd[systemd]) skip, saying why, where it is not installed. CI installs it; set
# KBOOTD_REQUIRE_PYTHON_SYSTEMD=1 there to make a missing module fail instead of skip.
_MISSING = _python_systemd_missing()
needs_python_systemd = pytest.mark.skipif(
    _MISSING is not None and os.environ.get("KBOOTD_REQUIRE_PYTHON_SYSTEMD") != "1",
    reason=f"needs python-systemd (systemd.journal, systemd.daemon), which is not importable here: {_MISSING}")
