"""YAML documents that remember where each field came from, for errors that name file and line.

The one YAML reader of kbootd (configs, kbootd.yaml and drop-ins, user-data, metadata), so
its limits hold for every input (issue 11 #7, #8): at most MAX_INPUT_BYTES of text; at
most MAX_NODES nodes once aliases are expanded (a 400-byte "billion laughs" would otherwise
expand to 10^9 nodes) and no recursive alias; at most MAX_DEPTH levels of nesting; mapping
keys must be scalars. PyYAML's own ValueErrors (ints over 4300 digits, `!!int 0o777x`,
bad timestamps) and RecursionError become ValidationError (exit 3) naming the source. The
composed node graph shares aliased nodes, so measuring its expanded size is linear in the
text; it is checked before anything walks or constructs the documents.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kbootd.errors import ValidationError

Path_ = tuple[Any, ...]
_MISSING = object()
MAX_INPUT_BYTES = 4 * 1024 * 1024  # a kubeadm config is a few KB; cloud-init caps user-data far lower
MAX_NODES = 100_000  # after alias expansion; a large config has a few hundred
MAX_DEPTH = 100  # kubeadm configs nest under 10 levels


def read_capped(path: str, where: str, limit: int = MAX_INPUT_BYTES) -> str:
    """A user-given file (e.g. --config), read with the size cap: `--config /dev/zero` ends at once."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise ValidationError(f"{where}: {path}: no such file") from None
    except OSError as e:
        raise ValidationError(f"{where}: {path}: cannot read: {e.strerror or e}") from None
    check_size(data, f"{where}: {path}", limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError(f"{where}: {path}: not UTF-8 text") from None


def check_size(data: str | bytes, source: str, limit: int = MAX_INPUT_BYTES) -> None:
    if len(data) > limit:
        raise ValidationError(f"{source}: larger than {limit // (1024 * 1024)} MiB; not a configuration kbootd reads")


@dataclass
class Doc:
    data: Any
    source: str
    lines: dict[Path_, int] = field(default_factory=dict)

    def line(self, path: Path_) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


def load_documents(text: str, source: str) -> list[Doc]:
    """Every non-empty document of text, each with the line of every field."""
    return [Doc(data, source, lines) for data, lines in _load(text, source, with_lines=True)]


def load_data(text: str, source: str) -> list[Any]:
    """Like yaml.safe_load_all (non-empty documents only), with this module's limits."""
    return [data for data, _ in _load(text, source, with_lines=False)]


def load_one(text: str, source: str) -> Any:
    """Like yaml.safe_load: the single document, or None for an empty text."""
    docs = load_data(text, source)
    if len(docs) > 1:
        raise ValidationError(f"{source}: expected one YAML document, found {len(docs)}")
    return docs[0] if docs else None


def _check_flow_depth(text: str, source: str) -> None:
    """PyYAML's pure-Python scanner is quadratic in flow nesting (`[[[[...`: 3,000 levels take
    seconds before the depth check below ever sees a node), so deep flow nesting is refused in
    one linear pass first. Quotes are not parsed here: only text with more than MAX_DEPTH
    unclosed brackets, in strings or not, is refused, and no configuration has that."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    depth = 0
    for m in re.finditer(r"[\[\]{}]", text):
        depth = depth + 1 if m.group() in "[{" else max(0, depth - 1)
        if depth > MAX_DEPTH:
            line = text.count("\n", 0, m.start()) + 1
            raise ValidationError(f"{source}:{line}: invalid YAML: nested deeper than {MAX_DEPTH} levels")


def _load(text: str, source: str, *, with_lines: bool) -> list[tuple[Any, dict[Path_, int]]]:
    import yaml

    if not isinstance(text, str):
        raise ValidationError(f"{source}: expected text")
    check_size(text, source)
    _check_flow_depth(text, source)
    out: list[tuple[Any, dict[Path_, int]]] = []
    budget = [MAX_NODES]
    try:
        loader = yaml.SafeLoader(text)
        try:
            while loader.check_node():
                node = loader.get_node()
                if node is None:
                    continue
                _measure(node, source, budget)
                lines: dict[Path_, int] = {}
                if with_lines:
                    _walk(node, (), lines)
                data = loader.construct_document(node)
                if data is not None:
                    out.append((data, lines))
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ValidationError(f"{where}: invalid YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise ValidationError(f"{source}: invalid YAML: {type(e).__name__}") from None
    except RecursionError:
        raise ValidationError(f"{source}: invalid YAML: nested too deeply") from None
    except (ValueError, OverflowError, TypeError, IndexError, AttributeError, KeyError):
        # PyYAML's constructors raise these for e.g. a 5000-digit int, `!!int 0o777x`,
        # `!!float .nanx`, an empty `!!float` (IndexError) or a bad `!!timestamp`. Their
        # text quotes the value, which may be a secret: it is not repeated.
        raise ValidationError(f"{source}: invalid YAML: a value cannot be read as the integer, number "
                              "or timestamp its form or tag says it is") from None
    return out


def _measure(node: Any, source: str, budget: list[int]) -> None:
    """Count nodes as if every alias were expanded; refuse recursion, excess depth and complex keys.

    Aliased nodes are the same Python objects, so each distinct node's expanded size is
    computed once (memo) and the walk is linear in the text, however large the expansion.
    """
    import yaml

    memo: dict[int, int] = {}
    active: set[int] = set()

    def size(n: Any, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise ValidationError(f"{source}:{n.start_mark.line + 1}: invalid YAML: nested deeper than "
                                  f"{MAX_DEPTH} levels")
        if id(n) in memo:
            total = memo[id(n)]
        elif id(n) in active:
            raise ValidationError(f"{source}:{n.start_mark.line + 1}: invalid YAML: an alias refers to "
                                  "the node that contains it")
        else:
            active.add(id(n))
            total = 1
            if isinstance(n, yaml.MappingNode):
                for k, v in n.value:
                    if not isinstance(k, yaml.ScalarNode):
                        raise ValidationError(f"{source}:{k.start_mark.line + 1}: invalid YAML: a mapping key "
                                              "must be a plain value, not a list or mapping")
                    total += 1 + size(v, depth + 1)
            elif isinstance(n, yaml.SequenceNode):
                for v in n.value:
                    total += size(v, depth + 1)
            active.discard(id(n))
            memo[id(n)] = total
        if total > budget[0]:
            raise ValidationError(f"{source}:{n.start_mark.line + 1}: invalid YAML: more than {MAX_NODES} "
                                  "values once aliases are expanded (an alias bomb?)")
        return total

    budget[0] -= size(node, 0)


def _walk(node: Any, path: Path_, lines: dict[Path_, int]) -> None:
    import yaml

    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value
            lines[path + (key,)] = k.start_mark.line + 1
            _walk(v, path + (key,), lines)
            lines[path + (key,)] = k.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _walk(v, path + (i,), lines)


class Fields:
    """A typed, consuming view of one mapping in a document.

    Each getter validates its value and names file, line and field path on error;
    `finish()` rejects any key nobody asked for (unknown fields).
    """

    def __init__(self, doc: Doc, data: Any, path: Path_, kind: str) -> None:
        self.doc, self.path, self.kind = doc, path, kind
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ValidationError(f"{self.where()}: expected a mapping, got {_tname(data)}")
        self.data: dict[str, Any] = data
        self._seen: set[str] = set()

    @classmethod
    def root(cls, doc: Doc, kind: str) -> Fields:
        return cls(doc, doc.data, (), kind)

    def field_name(self, key: Any = None) -> str:
        parts = [str(p) if not isinstance(p, int) else f"[{p}]" for p in self.path]
        if key is not None:
            parts.append(str(key))
        return self.kind + "".join(p if p.startswith("[") else "." + p for p in parts)

    def where(self, key: Any = None) -> str:
        path = self.path + ((key,) if key is not None else ())
        line = self.doc.line(path)
        loc = f"{self.doc.source}:{line}" if line else self.doc.source
        return f"{loc}: {self.field_name(key)}"

    def error(self, key: Any, message: str) -> ValidationError:
        return ValidationError(f"{self.where(key)}: {message}")

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: Any = None) -> Any:
        self._seen.add(key)
        return self.data.get(key, default)

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None,
            check: Callable[[Any, str], Any] | None = None) -> Any:
        self._seen.add(key)
        if key not in self.data or self.data[key] is None:
            return default
        v = self.data[key]
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        ok = isinstance(v, kind) and not (isinstance(v, bool) and kind in (int, float))
        if not ok:
            names = " or ".join(t.__name__ for t in (kind if isinstance(kind, tuple) else (kind,)))
            raise self.error(key, f"expected {_human(names)}, got {_tname(v)} {v!r}")
        return check(v, self.where(key)) if check else v

    def str(self, key: str, default: str | None = None, check: Callable[[Any, str], Any] | None = None) -> Any:
        v = self.get(key, (str, int, float), default, None)
        if v == "":
            v = default  # kubeadm's zero value: an explicit "" means "unset, use the default"
        if v is not default and not isinstance(v, str):
            v = str(v)  # YAML reads `version: 1.32` as a float; users mean the string
        return check(v, self.where(key)) if (check and v is not None) else v

    def int(self, key: str, default: int | None = None, check: Callable[[Any, str], Any] | None = None) -> Any:
        return self.get(key, int, default, check)

    def bool(self, key: str, default: bool = False) -> bool:
        return self.get(key, bool, default)

    def str_list(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        v = self.get(key, list, None)
        if v is None:
            return default
        out = []
        for i, item in enumerate(v):
            if not isinstance(item, (str, int, float)) or isinstance(item, bool):
                raise ValidationError(f"{self.where(key)}[{i}]: expected a string, got {_tname(item)}")
            out.append(str(item))
        return tuple(out)

    def str_map(self, key: str) -> tuple[tuple[str, str], ...]:
        v = self.get(key, dict, None)
        if v is None:
            return ()
        out = []
        for k, val in v.items():
            if isinstance(val, (dict, list)) or val is None:
                raise ValidationError(f"{self.where(key)}.{k}: expected a string value, got {_tname(val)}")
            out.append((str(k), _scalar_str(val)))
        return tuple(out)

    def sub(self, key: str) -> Fields | None:
        self._seen.add(key)
        if key not in self.data or self.data[key] is None:
            return None
        return Fields(self.doc, self.data[key], self.path + (key,), self.kind)

    def items(self, key: str) -> Iterator[Fields]:
        v = self.get(key, list, None) or []
        for i, item in enumerate(v):
            yield Fields(self.doc, item, self.path + (key, i), self.kind)

    def finish(self) -> None:
        unknown = [k for k in self.data if k not in self._seen]
        if unknown:
            k = unknown[0]
            known = ", ".join(sorted(self._seen)) or "(none)"
            raise self.error(k, f"unknown field {k!r}; known fields here: {known}")


def _scalar_str(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _tname(v: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "null"}.get(type(v), type(v).__name__)


def _human(names: str) -> str:
    return (names.replace("str", "a string").replace("int", "an integer")
            .replace("float", "a number").replace("bool", "a boolean")
            .replace("dict", "a mapping").replace("list", "a list"))
