"""The join command printed at the end of init, as an operator can paste it."""

from __future__ import annotations

import sys


def join_command(endpoint: str, token_text: str, pin: str, program: str = "kbootd") -> str:
    return f"{program} join {endpoint} --token {token_text} \\\n\t--discovery-token-ca-cert-hash {pin}"


def print_join_command(ctx) -> None:
    """Printed straight to the operator's stdout: the only place the whole token may appear.

    In dry-run nothing was created, so the token shows as its id only.
    """
    tok = ctx.store.get("token")
    if ctx.skip_token_print or not tok:
        return
    pin, endpoint = ctx.store.get("ca_pin") or _pin_on_disk(ctx), ctx.store.get("endpoint")
    if not endpoint:
        from kbootd.node import control_plane_endpoint

        endpoint = control_plane_endpoint(ctx)
    if not pin:
        ctx.reporter.warn("init", "no cluster CA found, so no join command can be printed")
        return
    text = str(tok) if ctx.dry_run else tok.full
    out = sys.stdout
    out.write("\nYou can now join any number of worker nodes by running the following on each as root:\n\n")
    out.write("  " + join_command(endpoint, text, pin) + "\n\n")
    out.write("or, with kubeadm:\n\n")
    out.write("  " + join_command(endpoint, text, pin, "kubeadm") + "\n")
    out.flush()


def _pin_on_disk(ctx) -> str | None:
    """The CA pin when the certs phase did not run in this invocation (--skip-phases, phase runs)."""
    data = ctx.host.read_bytes(f"{ctx.cfg.cluster.certificates_dir}/ca.crt")
    if not data:
        return None
    from kbootd.pin import pin_of
    from kbootd.pki.certs import load_cert_pem

    return pin_of(load_cert_pem(data, "ca.crt"))
