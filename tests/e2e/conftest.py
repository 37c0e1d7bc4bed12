"""Fixtures for e2e tests: the base image, the kbootd artefact, and booted hosts.

Skips (with the reason) when the machine cannot run containers; in CI (CI=true) as root
the same conditions fail instead, so a broken harness cannot hide behind a skip.
Every e2e test runs once per Debian release (image.SUITES: bookworm and trixie; the test
ids say which). Environment: KBOOTD_E2E_SUITES (e.g. "trixie": fewer releases),
KBOOTD_E2E_CACHE (image cache, default /var/cache/kbootd-e2e),
KBOOTD_E2E_ARTEFACTS (failed hosts' journals), KBOOTD_ARTEFACT (a prebuilt .whl or .deb
to install instead of building a wheel from this checkout).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import image
from tests.e2e.hosts import Hosts
from tests.e2e.install import build_wheel
from tests.e2e.nspawn import reap_leftovers


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> None:
    if _in_ci() and os.geteuid() == 0:
        pytest.fail(f"e2e harness broken in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def _say(config: pytest.Config, line: str) -> None:
    """Print past output capture (a module fixture's teardown output is otherwise shown
    only if the module's last test failed)."""
    tr = config.pluginmanager.get_plugin("terminalreporter")
    capman = config.pluginmanager.get_plugin("capturemanager")
    if tr is not None and capman is not None:
        with capman.global_and_fixture_disabled():
            tr.write_line(line)


@pytest.fixture(scope="session", params=image.SUITES)
def e2e_suite(request: pytest.FixtureRequest) -> str:
    """The Debian release (suite name) the hosts of this test boot."""
    return request.param


@pytest.fixture(scope="session")
def e2e_image(request: pytest.FixtureRequest, e2e_suite: str) -> Iterator[Path]:
    """The suite's unpacked base root (read-only overlay lower dir); reaps dead runs'
    leftovers first and this run's at the end (of each suite)."""
    try:
        image.check_machine()
    except image.Unavailable as e:
        _unavailable(str(e))
    for item in reap_leftovers():
        _say(request.config, f"[e2e] reaped leftover {item}")
    try:
        root = image.unpack(image.build_base_image(e2e_suite))
    except image.Unavailable as e:
        _unavailable(str(e))
    yield root
    reap_leftovers(include_own=True)


@pytest.fixture(scope="session")
def kbootd_artefact(e2e_image: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What gets installed into hosts: $KBOOTD_ARTEFACT, or a wheel of this checkout."""
    given = os.environ.get("KBOOTD_ARTEFACT")
    if given:
        return Path(given).resolve()
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def e2e_hosts(request: pytest.FixtureRequest, e2e_image: Path, kbootd_artefact: Path) -> Iterator[Hosts]:
    failed_before = request.session.testsfailed
    hosts = Hosts(e2e_image, kbootd_artefact)
    yield hosts
    hosts.close(failed=request.session.testsfailed > failed_before)
    for h in hosts.hosts:
        if h.artefacts:
            _say(request.config, f"[e2e] {h.name}: journal and console log kept in {h.artefacts}")
