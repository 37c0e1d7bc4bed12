"""`kbootd certs check-expiration` output: kubeadm v1.32's text table, YAML and JSON documents.

Text: kubeadm's certTextPrinter through Go's text/tabwriter (minwidth 10, tabwidth 4,
padding 3, blank padding), expiry as "Jan 02, 2006 15:04 MST", residual time as
apimachinery's duration.ShortHumanDuration, "yes"/"no" padded to 8 (`%-8v`), a missing
certificate as "!MISSING! <name>". YAML/JSON: output.kubeadm.k8s.io/v1alpha3
CertificateExpirationInfo (YAML keys sorted as sigs.k8s.io/yaml writes them; JSON in the
struct's field order, indented by 4 as cli-runtime's JSON printer does).
"""

from __future__ import annotations

import json
from datetime import datetime

from kbootd.pki.inventory import Expiry

API_VERSION = "output.kubeadm.k8s.io/v1alpha3"
KIND = "CertificateExpirationInfo"


def short_human_duration(seconds: float) -> str:
    """apimachinery's duration.ShortHumanDuration."""
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    minutes = s // 60
    if minutes < 60:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    return f"{hours // 24 // 365}y"


def tabwriter(lines: list[str], *, minwidth: int = 10, padding: int = 3) -> str:
    """Go's text/tabwriter with blank padding and no flags: cells end at a tab; a column's
    width holds within a block of consecutive lines that have that column."""
    rows = [line.split("\t") for line in lines]
    out: list[str] = []
    widths: list[int] = []

    def write(lo: int, hi: int) -> None:
        for row in rows[lo:hi]:
            text = ""
            for j, cell in enumerate(row):
                if j < len(widths) and j < len(row) - 1:
                    text += cell.ljust(widths[j])
                else:
                    text += cell
            out.append(text)

    def fmt(lo: int, hi: int) -> None:
        column = len(widths)
        this = lo
        while this < hi:
            if column >= len(rows[this]) - 1:
                this += 1
                continue
            write(lo, this)
            lo = this
            width = minwidth
            while this < hi and column < len(rows[this]) - 1:
                width = max(width, len(rows[this][column]) + padding)
                this += 1
            widths.append(width)
            fmt(lo, this)
            widths.pop()
            lo = this
        write(lo, hi)

    fmt(0, len(rows))
    return "".join(line + "\n" for line in out)


def _yes_no(flag: bool) -> str:
    return f"{'yes' if flag else 'no':<8}"


def _date(e: Expiry) -> str:
    assert e.not_after is not None
    return e.not_after.strftime("%b %d, %Y %H:%M UTC")


def text(leaves: list[Expiry], cas: list[Expiry], now: datetime) -> str:
    lines = ["CERTIFICATE\tEXPIRES\tRESIDUAL TIME\tCERTIFICATE AUTHORITY\tEXTERNALLY MANAGED"]
    for e in leaves:
        if e.missing:
            lines.append(f"!MISSING! {e.name}\t\t\t\t")
            continue
        lines.append(f"{e.name}\t{_date(e)}\t{short_human_duration(e.residual_seconds(now))}\t{e.ca}\t"
                     f"{_yes_no(e.external)}")
    lines.append("")
    lines.append("CERTIFICATE AUTHORITY\tEXPIRES\tRESIDUAL TIME\tEXTERNALLY MANAGED")
    for e in cas:
        if e.missing:
            lines.append(f"!MISSING! {e.name}\t\t\t")
            continue
        lines.append(f"{e.name}\t{_date(e)}\t{short_human_duration(e.residual_seconds(now))}\t{_yes_no(e.external)}")
    return tabwriter(lines)


def _entry(e: Expiry, now: datetime) -> dict[str, object]:
    """One Certificate in its Go struct's field order (name, expirationDate, residualTime,
    externallyManaged, caName with omitempty, missing); a missing one has no date (null) and no caName."""
    d: dict[str, object] = {"name": e.name,
                            "expirationDate": e.not_after.strftime("%Y-%m-%dT%H:%M:%SZ") if e.not_after else None,
                            "residualTime": e.residual_seconds(now),
                            "externallyManaged": e.external}
    if e.ca and not e.missing:
        d["caName"] = e.ca
    d["missing"] = e.missing
    return d


def document(leaves: list[Expiry], cas: list[Expiry], now: datetime) -> dict[str, object]:
    return {"kind": KIND, "apiVersion": API_VERSION,
            "certificates": [_entry(e, now) for e in leaves],
            "certificateAuthorities": [_entry(e, now) for e in cas]}


def to_json(leaves: list[Expiry], cas: list[Expiry], now: datetime) -> str:
    return json.dumps(document(leaves, cas, now), indent=4) + "\n"


def _scalar(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    s = str(value)
    # sigs.k8s.io/yaml (go-yaml v2) double-quotes strings YAML would read as something else.
    if s[:1].isdigit():
        return json.dumps(s)
    return s


def to_yaml(leaves: list[Expiry], cas: list[Expiry], now: datetime) -> str:
    doc = document(leaves, cas, now)
    out = [f"apiVersion: {API_VERSION}"]
    for key in ("certificateAuthorities", "certificates"):
        entries = doc[key]
        out.append(f"{key}: []" if not entries else f"{key}:")
        for entry in entries:  # type: ignore[union-attr]
            for i, k in enumerate(sorted(entry)):
                out.append(f"{'- ' if i == 0 else '  '}{k}: {_scalar(entry[k])}")
    out.append(f"kind: {KIND}")
    return "\n".join(out) + "\n"
