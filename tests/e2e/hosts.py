"""Hosts that live for a test module: boot once, test many times."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tests.e2e.install import kbootd_installer
from tests.e2e.nspawn import Host, Installer, Network, Seed


class Hosts:
    """Boots hosts that live until the end of the module (boot once, test many times);
    if any test of the module failed, their journals and console logs are kept."""

    def __init__(self, image_root: Path, artefact: Path) -> None:
        self.image_root = image_root
        self.artefact = artefact
        self._net: Network | None = None
        self.hosts: list[Host] = []

    @property
    def net(self) -> Network:
        if self._net is None:
            self._net = Network()
        return self._net

    def boot(self, name: str, *, ip: str | None = None, seed: Seed | None = None,
             kbootd: bool = True, install: Sequence[Installer] = (),
             timeout: float = 120) -> Host:
        """Boot a host (on the private network if ip is given), kbootd installed unless
        kbootd=False; returns once it is booted and cloud-init is done."""
        h = Host(self.net if ip else None, name=name, ip=ip, image=self.image_root,
                 seed=seed, boot_timeout=timeout,
                 install=[*([kbootd_installer(self.artefact)] if kbootd else []), *install])
        self.hosts.append(h)
        h.start()
        return h

    def launch(self, name: str, *, ip: str | None = None, seed: Seed | None = None,
               kbootd: bool = True, install: Sequence[Installer] = (),
               timeout: float = 120) -> Host:
        """Like boot() but returns as soon as the host starts booting (several hosts boot
        in parallel); call its wait_ready() before using it."""
        h = Host(self.net if ip else None, name=name, ip=ip, image=self.image_root,
                 seed=seed, boot_timeout=timeout,
                 install=[*([kbootd_installer(self.artefact)] if kbootd else []), *install])
        self.hosts.append(h)
        h.prepare()
        h.launch()
        return h

    def close(self, failed: bool) -> None:
        """Close every host even if one fails to, then the network; re-raise the first error."""
        errors: list[Exception] = []
        for h in self.hosts:
            try:
                h.close(failed=failed)
            except Exception as e:  # noqa: BLE001 - the other hosts must go too
                errors.append(e)
        if self._net is not None:
            self._net.close()
        if errors:
            raise errors[0]
