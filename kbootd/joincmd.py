"""The join command printed at the end of init, as an operator can paste it."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from kbootd.errors import KbootdError

if TYPE_CHECKING:
    from kbootd.context import Context


def join_command(endpoint: str, token_text: str, pin: str, program: str = "kbootd") -> str:
    return f"{program} join {endpoint} --token {token_text} \\\n\t--discovery-token-ca-cert-hash {pin}"


def print_join_command(ctx: Context) -> None:
    """Printed straight to the operator's stdout: the only place the whole token may appear.

    In dry-run nothing was created, so the token shows as its id only.
    """
    tok = ctx.data.token
    if ctx.skip_token_print or not tok:
        return
    try:
        pin = ctx.data.ca_pin
    except KbootdError:
        ctx.reporter.warn("init", "no cluster CA found, so no join command can be printed")
        return
    endpoint = ctx.data.endpoint
    text = str(tok) if ctx.dry_run else tok.full
    out = sys.stdout
    key = ctx.data.known("certificate_key")
    if key and ctx.cfg.cluster.control_plane_endpoint:
        # As kubeadm after --upload-certs: the control planes' command first, with the key it used.
        shown = "<redacted>" if ctx.dry_run else key
        out.write("\nYou can now join any number of control-plane nodes by running the following on each as root:\n\n")
        out.write("  " + join_command(endpoint, text, pin) + f" \\\n\t--control-plane --certificate-key {shown}\n\n")
        out.write("Please note that the certificate-key gives access to cluster sensitive data, keep it secret!\n"
                  "As a safeguard, uploaded-certs will be deleted in two hours; if necessary, you can use\n"
                  '"kbootd init phase upload-certs --upload-certs" to reload certs afterward.\n')
    out.write("\nYou can now join any number of worker nodes by running the following on each as root:\n\n")
    out.write("  " + join_command(endpoint, text, pin) + "\n\n")
    out.write("or, with kubeadm:\n\n")
    out.write("  " + join_command(endpoint, text, pin, "kubeadm") + "\n")
    out.flush()
