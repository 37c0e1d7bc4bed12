"""What init, join and reset phases share: kubeadm's narrow InitData/JoinData.

Every product is derived on first use from the configuration and from what is on disk or
in the cluster, then kept for the run. Nothing is only handed from one phase to the next,
so a resumed workflow (the daemon skips phases already done) or a single
`kbootd phase ...` finds what an earlier run made: the CA pin comes from ca.crt, a
generated bootstrap token from the cluster, the discovered cluster from discovery again.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from kbootd import cri, images, node
from kbootd.cluster import tokens as cluster_tokens
from kbootd.join import phases as join_phases
from kbootd.pki import files as pki_files

if TYPE_CHECKING:
    from kbootd.config.model import BootstrapTokenSpec, ClusterConfig
    from kbootd.context import Context
    from kbootd.join.discovery import DiscoveredCluster
    from kbootd.token import BootstrapToken


class PhaseData:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        # Resources and caches of this run (not products): kept here so their types are known.
        self.api_client: Any = None  # the admin client of init's cluster phases, or one handed in
        self.cluster_admins_ensured = False
        self.dirs_made: set[str] = set()  # directories made this run (a dry run announces each once)
        self.memfiles: list[Any] = []  # sealed memory files that must live as long as the run
        self.preflight_facts: Any = None
        self.certificate_key: str | None = None  # upload-certs' key, for the control-plane join command
        # join: what kubelet-start read from the cluster (absent when it did not run in this process)
        self.cluster_configuration: ClusterConfig | None = None
        self.cluster_cgroup_driver: str | None = None
        self.cluster_pause_image: str | None = None

    def known(self, name: str) -> Any:
        """The value of `name` if this run already derived it, else None (never derives)."""
        return self.__dict__.get(name)

    # --- this node ----------------------------------------------------------------------
    @cached_property
    def host_name(self) -> str:
        return node.detect_host_name(self._ctx)

    @cached_property
    def node_name(self) -> str:
        return node.derive_node_name(self._ctx)

    @cached_property
    def cri_socket(self) -> str:
        return cri.detect_socket(self._ctx)

    @cached_property
    def containerd_version(self) -> tuple[int, int, int] | None:
        return cri.query_containerd_version(self._ctx)

    # --- init -----------------------------------------------------------------------------
    @cached_property
    def advertise_address(self) -> str:
        return node.detect_advertise_address(self._ctx)

    @cached_property
    def endpoint(self) -> str:
        """host:port of the control plane: init's from the configuration, join's from discovery."""
        if self._ctx.join is not None:
            return self.cluster.server
        return node.control_plane_endpoint(self._ctx)

    @cached_property
    def ca_pin(self) -> str:
        return pki_files.ca_pin_on_disk(self._ctx)

    @cached_property
    def images(self) -> images.Images:
        """Once per run, so deprecation warnings (KUBE_* variables) print once."""
        return images.images_for(self._ctx.cfg.cluster, lambda m: self._ctx.reporter.warn("control-plane", m))

    @cached_property
    def tokens(self) -> list[tuple[BootstrapTokenSpec, BootstrapToken]]:
        """Each configured token; the first spec without one reuses the valid token an earlier
        init generated (found in the cluster), else gets a new one."""
        return cluster_tokens.resolve_init_tokens(self._ctx)

    @property
    def token(self) -> BootstrapToken | None:
        """The token of the join command, once the bootstrap-token phase resolved it."""
        tokens = self.known("tokens")
        return tokens[0][1] if tokens else None

    # --- join -----------------------------------------------------------------------------
    @cached_property
    def cluster(self) -> DiscoveredCluster:
        """The trusted cluster; discovery runs again when this process did not run it."""
        return join_phases.discover(self._ctx)
