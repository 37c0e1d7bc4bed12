"""YAML as Kubernetes' Go tooling writes it (sigs.k8s.io/yaml), so hashes and dry-run output match.

kubeadm hashes ConfigMap data (the component-config.hash annotation) over text that
Go produced; to reproduce that text byte for byte the differences from PyYAML matter:
double quotes where quoting is needed ("" not ''), block literals for multi-line
strings, sorted keys and no line folding.
"""

from __future__ import annotations

from typing import Any

import yaml


class _GoStyleDumper(yaml.SafeDumper):
    def choose_scalar_style(self) -> str:  # type: ignore[override]
        style = super().choose_scalar_style()
        # PyYAML prefers single quotes; Go's encoder always uses double quotes.
        return '"' if style == "'" else style


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_GoStyleDumper.add_representer(str, _str)


def dump(obj: Any) -> str:
    """One document, keys sorted, as Go's YAML encoder writes it."""
    return yaml.dump(obj, Dumper=_GoStyleDumper, sort_keys=True, default_flow_style=False,
                     allow_unicode=True, width=1 << 30, indent=2)
