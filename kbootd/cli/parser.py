"""The argparse tree: every command and flag, with kubeadm's names and help.

Only argparse and light kbootd modules are imported here, so building the parser costs
little; commands name their handlers as "module:function" and cli/main.py imports the
handler's module when its command runs (dispatch, not a hidden import circle).
"""

from __future__ import annotations

import argparse

from kbootd.cli import certsparser
from kbootd.errors import ValidationError
from kbootd.tokenshape import TOKEN_FORMAT


class CommaList(argparse.Action):
    """Accepts both `--flag a,b` and `--flag a --flag b` (the spec's rule for multi-value flags)."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[override]
        items = list(getattr(namespace, self.dest, None) or [])
        items.extend(v.strip() for v in str(values).split(",") if v.strip())
        setattr(namespace, self.dest, items)


class Repeated(argparse.Action):
    """Repeatable and comma-separated, for values that never contain commas (CA hashes)."""

    __call__ = CommaList.__call__


class KbootdArgumentParser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        raise ValidationError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def _common(p: argparse.ArgumentParser, *, dry_run: bool = True) -> None:
    p.add_argument("--root", default=None, metavar="DIR",
                   help="treat DIR as the host's root filesystem; with a root other than /, "
                        "kbootd records service actions and commands instead of running them")
    p.add_argument("-v", "--verbosity", type=int, default=0, metavar="N",
                   help="log level; 5 and above show tracebacks for errors")
    if dry_run:
        p.add_argument("--dry-run", action="store_true", help="don't apply any changes; just output what would be done")


def _preflight(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ignore-preflight-errors", action=CommaList, metavar="NAMES",
                   help="checks whose errors become warnings, e.g. Swap,NumCPU; 'all' ignores every check")
    p.add_argument("--skip-preflight-checks", action="store_true",
                   help="deprecated (the spec's flag): same as --ignore-preflight-errors=all")
    p.add_argument("--cri-socket", metavar="PATH", help="path to the CRI socket; detected when not given")
    p.add_argument("--node-name", metavar="NAME", help="the Node name; defaults to the host name")
    p.add_argument("--skip-phases", action=CommaList, metavar="PHASES", help="phases to skip, e.g. preflight,certs/ca")


def _init_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="a kubeadm configuration file (v1beta4 or the spec's v1alpha1)")
    p.add_argument("--apiserver-advertise-address", metavar="IP",
                   help="the IP address the API server advertises; defaults to the default interface's")
    p.add_argument("--apiserver-bind-port", metavar="PORT", help="port for the API server to bind to (default 6443)")
    p.add_argument("--apiserver-cert-extra-sans", action=CommaList, metavar="SANS",
                   help="extra Subject Alternative Names (IPs and DNS names) for the API server's certificate")
    p.add_argument("--cert-dir", metavar="DIR", help="where certificates are stored (default /etc/kubernetes/pki)")
    p.add_argument("--control-plane-endpoint", metavar="HOST[:PORT]",
                   help="a stable address for the control plane (a load balancer or DNS name)")
    p.add_argument("--feature-gates", action=CommaList, metavar="NAME=BOOL,...", help="kubeadm feature gates")
    p.add_argument("--image-repository", metavar="REPO", help="registry to pull control-plane images from (default registry.k8s.io)")
    p.add_argument("--kubernetes-version", metavar="VERSION", help="the Kubernetes version of the control plane")
    p.add_argument("--pod-network-cidr", metavar="CIDR", help="the Pod network; the controller-manager allocates node CIDRs from it")
    p.add_argument("--service-cidr", metavar="CIDR", help="the Service network (default 10.96.0.0/12)")
    p.add_argument("--service-dns-domain", metavar="DOMAIN", help="the cluster DNS domain (default cluster.local)")
    p.add_argument("--token", metavar="TOKEN", help=f"the bootstrap token, {TOKEN_FORMAT}; generated when not given")
    p.add_argument("--token-ttl", metavar="DURATION", help="how long the token lives, e.g. 24h, 15m; 0 means forever")
    p.add_argument("--skip-token-print", action="store_true", help="don't print the token and join command at the end")
    p.add_argument("--upload-certs", action="store_true",
                   help="upload the control plane's shared certificates to the kubeadm-certs Secret (2 hours)")
    p.add_argument("--certificate-key", metavar="KEY",
                   help="64 hex digits encrypting the kubeadm-certs Secret; generated when not given")
    _preflight(p)


def _join_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("endpoints", nargs="*", metavar="API_SERVER", help="API server endpoint(s), host:port")
    p.add_argument("--config", metavar="FILE", help="a JoinConfiguration (v1beta4) or the spec's NodeConfiguration")
    p.add_argument("--discovery-file", metavar="PATH|URL",
                   help="a kubeconfig with one unnamed cluster: a local file or an https:// URL")
    p.add_argument("--discovery-token", metavar="TOKEN", help="the token used to validate cluster information")
    p.add_argument("--discovery-token-ca-cert-hash", action=Repeated, metavar="sha256:HEX",
                   help="pin of the cluster CA's public key; repeatable, any match passes")
    p.add_argument("--discovery-token-unsafe-skip-ca-verification", action="store_true",
                   help="accept any CA the token signs, without a pin (see the security model)")
    p.add_argument("--discovery-timeout", metavar="DURATION", help="give up discovery after this long (default 5m)")
    p.add_argument("--tls-bootstrap-token", metavar="TOKEN", help="the token the kubelet uses for its TLS bootstrap")
    p.add_argument("--token", metavar="TOKEN", help="use this token for both discovery and TLS bootstrap")
    p.add_argument("--control-plane", action="store_true", help="create a new control plane instance on this node")
    p.add_argument("--certificate-key", metavar="KEY",
                   help="with --control-plane: the key that decrypts the kubeadm-certs Secret")
    p.add_argument("--apiserver-advertise-address", metavar="IP",
                   help="with --control-plane: the IP address this API server advertises")
    p.add_argument("--apiserver-bind-port", metavar="PORT",
                   help="with --control-plane: the port this API server binds to (default 6443)")
    _preflight(p)


def _kubeconfig_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", metavar="FILE",
                   help="the kubeconfig to talk to the cluster with (default /etc/kubernetes/admin.conf)")


def _reset_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="reset without asking for confirmation")
    p.add_argument("--cert-dir", metavar="DIR", default="/etc/kubernetes/pki", help="the certificates directory to delete")
    p.add_argument("--cri-socket", metavar="PATH", help="the CRI socket; detected when not given")
    p.add_argument("--remove-node", action="store_true",
                   help="delete this node's Node object through the API first (off by default, as kubeadm)")
    p.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig for --remove-node (default /etc/kubernetes/admin.conf)")
    p.add_argument("--node-name", metavar="NAME", help="the Node name; defaults to the host name")
    p.add_argument("--skip-phases", action=CommaList, metavar="PHASES", help="phases to skip")



def build(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or one with only command `only` filled in (fast path for a known command)."""
    parser = KbootdArgumentParser(
        prog="kbootd",
        description="kbootd turns freshly booted machines into a Kubernetes cluster: kubeadm's "
                    "init and join, natively in Python, as a CLI and a systemd daemon.",
        epilog="Exit codes: 0 ok, 1 failure, 2 preflight, 3 invalid input, 4 discovery/security, 5 timeout.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=KbootdArgumentParser)
    sub.required = True

    def cmd(name: str, help_: str, handler: str) -> argparse.ArgumentParser | None:
        if only is not None and only != name:
            sub.add_parser(name, help=help_, add_help=False)
            return None
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_handler=handler)
        return p

    if (p := cmd("init", "Run this control-plane node's bootstrap (kubeadm init)", "kbootd.cli.workflows:init")):
        _init_flags(p)
        _common(p)
    if (p := cmd("join", "Join this node to a cluster (kubeadm join)", "kbootd.cli.workflows:join")):
        _join_flags(p)
        _common(p)
    if (p := cmd("reset", "Revert what init or join did on this host (kubeadm reset)", "kbootd.cli.workflows:reset")):
        _reset_flags(p)
        _common(p)
    if (p := cmd("token", "Manage bootstrap tokens", "kbootd.cli.commands:token")):
        ts = p.add_subparsers(dest="token_command", metavar="SUBCOMMAND", parser_class=KbootdArgumentParser)
        ts.required = True
        g = ts.add_parser("generate", help="Generate a random token locally; nothing is created on a server")
        g.set_defaults(_handler="kbootd.cli.commands:token_generate")
        c = ts.add_parser("create", help="Create a bootstrap token on the server")
        c.add_argument("token", nargs="?", metavar="TOKEN", help="the token to create; generated when not given")
        c.add_argument("--ttl", default="24h", metavar="DURATION", help="time to live, e.g. 24h, 15m; 0 = never expires")
        c.add_argument("--usages", action=CommaList, metavar="USAGES",
                       help="signing,authentication (the default)")
        c.add_argument("--groups", action=CommaList, metavar="GROUPS",
                       help="extra groups, each starting with system:bootstrappers: "
                            "(default system:bootstrappers:kubeadm:default-node-token)")
        c.add_argument("--description", default="", help="a human-readable description")
        c.add_argument("--print-join-command", action="store_true", help="print the whole join command instead")
        c.add_argument("--certificate-key", metavar="KEY",
                       help="with --print-join-command: print the control-plane join command with this key")
        c.set_defaults(_handler="kbootd.cli.tokens:token_create")
        ls = ts.add_parser("list", help="List bootstrap tokens on the server")
        ls.add_argument("-o", "--output", choices=("text", "json", "yaml"), default="text")
        ls.set_defaults(_handler="kbootd.cli.tokens:token_list")
        d = ts.add_parser("delete", help="Delete bootstrap tokens (by id, or whole token: only the id is used)")
        d.add_argument("tokens", nargs="+", metavar="TOKEN_ID|TOKEN")
        d.set_defaults(_handler="kbootd.cli.tokens:token_delete")
        for sp in (c, ls, d):
            _kubeconfig_flag(sp)
            _common(sp, dry_run=sp is d)  # kubeadm's token delete --dry-run
    if (p := cmd("config", "Print and inspect configuration", "kbootd.cli.commands:config")):
        cs = p.add_subparsers(dest="config_command", metavar="SUBCOMMAND", parser_class=KbootdArgumentParser)
        cs.required = True
        vw = cs.add_parser("view", help="Print the cluster's ClusterConfiguration (the kubeadm-config ConfigMap)")
        vw.set_defaults(_handler="kbootd.cli.configcmds:config_view")
        up = cs.add_parser("upload", help="Upload the configuration to the kubeadm-config and kubelet-config ConfigMaps")
        ups = up.add_subparsers(dest="upload_from", metavar="SOURCE", parser_class=KbootdArgumentParser)
        ups.required = True
        uf = ups.add_parser("from-file", help="Upload a kubeadm configuration file")
        uf.add_argument("--config", required=True, metavar="FILE", help="the kubeadm configuration file")
        ul = ups.add_parser("from-flags", help="Upload a configuration built from init's flags")
        _init_flags(ul)
        for sp in (vw, uf, ul):
            sp.set_defaults(_handler="kbootd.cli.configcmds:config_view" if sp is vw
                            else "kbootd.cli.configcmds:config_upload")
            _kubeconfig_flag(sp)
            _common(sp, dry_run=sp is not vw)
        pr = cs.add_parser("print", help="Print default configuration")
        ps = pr.add_subparsers(dest="print_what", metavar="WHAT", parser_class=KbootdArgumentParser)
        ps.required = True
        ps.add_parser("init-defaults", help="Default InitConfiguration and ClusterConfiguration (v1beta4)") \
            .set_defaults(_handler="kbootd.cli.configcmds:config_print_init")
        ps.add_parser("join-defaults", help="Default JoinConfiguration (v1beta4)") \
            .set_defaults(_handler="kbootd.cli.configcmds:config_print_join")
        mg_help = ("Read a v1beta3/v1beta4 or the spec's v1alpha1 configuration file and write the same "
                   "configuration as kubeadm.k8s.io/v1beta4, with kubeadm's defaults filled in")
        mg = cs.add_parser("migrate", help=mg_help, description=mg_help)
        mg.add_argument("--old-config", required=True, metavar="FILE",
                        help="the configuration file to convert (mandatory)")
        mg.add_argument("--new-config", metavar="FILE",
                        help="where to write the v1beta4 configuration (mode 0600); default: standard output")
        mg.add_argument("--allow-experimental-api", action="store_true",
                        help="accepted for kubeadm compatibility; kbootd writes only v1beta4")
        mg.add_argument("-v", "--verbosity", type=int, default=0, metavar="N", help="log level")
        mg.set_defaults(_handler="kbootd.cli.configcmds:config_migrate")
        va_help = ("Check a kubeadm configuration file as init/join would, duplicate keys and unknown "
                   "component-config fields included; prints ok, or exits 3 naming file:line and field")
        va = cs.add_parser("validate", help=va_help, description=va_help)
        va.add_argument("--config", required=True, metavar="FILE", help="the configuration file to check")
        va.add_argument("--allow-experimental-api", action="store_true",
                        help="accepted for kubeadm compatibility")
        va.add_argument("-v", "--verbosity", type=int, default=0, metavar="N", help="log level")
        va.set_defaults(_handler="kbootd.cli.configcmds:config_validate")
        im = cs.add_parser("images", help="Container images kbootd will use")
        ims = im.add_subparsers(dest="images_command", metavar="SUBCOMMAND", parser_class=KbootdArgumentParser)
        ims.required = True
        il = ims.add_parser("list", help="Print the images for the configured version and repository")
        il.set_defaults(_handler="kbootd.cli.configcmds:config_images_list")
        il.add_argument("--config", metavar="FILE", help="a kubeadm configuration file")
        il.add_argument("--kubernetes-version", metavar="VERSION", help="the Kubernetes version")
        il.add_argument("--image-repository", metavar="REPO", help="the image registry")
        il.add_argument("-o", "--output", choices=("text", "json", "yaml"), default="text")
    if (p := cmd("phase", "Run one phase of init or join", "kbootd.cli.workflows:phase")):
        ph = p.add_subparsers(dest="workflow", metavar="WORKFLOW", parser_class=KbootdArgumentParser)
        ph.required = True
        for wf, flags in (("init", _init_flags), ("join", _join_flags), ("reset", _reset_flags)):
            w = ph.add_parser(wf, help=f"List the phases of {wf}, or run one")
            w.add_argument("phase_name", nargs="?", metavar="PHASE", help="the phase to run, e.g. certs or certs/ca")
            flags(w)
            _common(w)
            w.set_defaults(_handler="kbootd.cli.workflows:phase")
    if (p := cmd("run", "Run the daemon: read role and token from cloud-init, init or join, then supervise",
                  "kbootd.daemon.main:run")):
        p.add_argument("--no-supervise", action="store_true",
                       help="exit once the node is initialised or joined instead of supervising it")
        _common(p, dry_run=False)
    if (p := cmd("status", "Show where this node's bootstrap stands (like cloud-init status)",
                  "kbootd.daemon.status:command")):
        p.add_argument("-o", "--output", choices=("text", "json"), default="text")
        p.add_argument("--wait", action="store_true", help="wait until kbootd is done or has failed for good")
        p.add_argument("--timeout", metavar="DURATION", help="with --wait: give up after this long")
        p.add_argument("--root", default=None, metavar="DIR", help="the host's root filesystem")
    if (p := cmd("ca", "Make a cluster CA ahead of time (for user-data: workers get its pin up front)",
                  "kbootd.cli.commands:config")):
        cas = p.add_subparsers(dest="ca_command", metavar="SUBCOMMAND", parser_class=KbootdArgumentParser)
        cas.required = True
        g = cas.add_parser("generate", help="Print a new CA certificate, key and pin as cloud-config write_files")
        g.add_argument("--common-name", default=None, metavar="CN", help="the CA's common name (default kubernetes)")
        g.add_argument("--validity", default=None, metavar="DURATION", help="how long the CA is valid (default 87600h)")
        g.add_argument("--algorithm", choices=("RSA-2048", "RSA-3072", "RSA-4096", "ECDSA-P256", "ECDSA-P384"),
                       default="RSA-2048")
        g.add_argument("-o", "--output", choices=("text", "json"), default="text")
        g.add_argument("--out-dir", default=None, metavar="DIR", help="write ca.crt and ca.key (0600) there instead")
        g.add_argument("--control-plane", action="store_true",
                       help="everything control planes share: cluster CA, front-proxy CA, etcd CA, sa.key/sa.pub")
        g.set_defaults(_handler="kbootd.daemon.ca:command")
    if (p := cmd("certs", certsparser.CERTS_HELP, f"{certsparser.HANDLERS}:missing_subcommand")):
        certsparser.add_certs(p, KbootdArgumentParser)
    if (p := cmd("kubeconfig", certsparser.KUBECONFIG_HELP, f"{certsparser.HANDLERS}:missing_subcommand")):
        certsparser.add_kubeconfig(p, KbootdArgumentParser)
    if (p := cmd("completion", "Print shell completion code (bash or zsh)", "kbootd.cli.completion:completion")):
        p.add_argument("shell", choices=("bash", "zsh"))
    if (p := cmd("version", "Print the version of kbootd", "kbootd.cli.commands:version")):
        p.add_argument("-o", "--output", choices=("short", "json", "yaml"), default=None)
    return parser


COMMANDS = ("init", "join", "reset", "token", "config", "phase", "run", "status", "ca", "certs", "kubeconfig",
            "completion", "version")
