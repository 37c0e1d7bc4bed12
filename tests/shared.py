"""Where ../shared/ (the specification, fixtures and e2e recipe) is: beside the checkout in CI,
/work/shared on developer machines, or $KBOOTD_SHARED."""

from __future__ import annotations

import os
from pathlib import Path


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
