"""A small PromQL evaluator over two real scrapes, for the subset session-buddy's dashboards use.

Supported: selectors with =, !=, =~, !~ matchers and [range]; rate() and increase() over the
scrapes inside the range (a counter reset counts as a restart from 0; no extrapolation to the
window edges, so values are the raw per-second rate / increase between the scrapes); sum, avg,
count, min, max and topk with `by (...)` before or after the argument; histogram_quantile()
(Prometheus' linear interpolation inside the bucket); time(); + - * / and the comparisons
== != < > <= >= (filtering, without `bool`) between a vector and a scalar or two scalars.
Anything else raises NotImplementedError, so an unsupported query fails loudly.
Imported as a plain module (tests/conftest.py puts tests/realtime on sys.path).
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Scrape", "Series", "evaluate", "metric_names", "parse", "split_condition"]

Labels = tuple[tuple[str, str], ...]


@dataclass
class Scrape:
    """One scrape: its time (s) and its samples by (name, sorted labels)."""

    t: float
    samples: dict[tuple[str, Labels], float] = field(default_factory=dict)

    @classmethod
    def from_text(cls, t: float, text: str) -> Scrape:
        s = cls(t)
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                s.add(sample.name, sample.labels, sample.value)
        return s

    def add(self, name: str, labels: dict[str, str], value: float) -> None:
        self.samples[(name, tuple(sorted(labels.items())))] = value


@dataclass
class Series:
    labels: dict[str, str]   # "__name__" while it is a raw selection
    value: float


# ---- parsing --------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<duration>\d+[smhdw](?![A-Za-z0-9_]))
  | (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>==|!=|=~|!~|<=|>=|[-+*/<>=(){}\[\],])
""", re.VERBOSE)

_AGGREGATIONS = {"sum", "avg", "count", "min", "max", "topk"}
_FUNCTIONS = {"rate", "increase", "histogram_quantile", "time"}
_COMPARISONS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt,
                "<=": operator.le, ">=": operator.ge}
_ARITHMETIC = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": lambda a, b: a / b if b else math.nan}
_DURATION = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise NotImplementedError(f"cannot read {text[pos:]!r}")
        pos = m.end()
        if m.lastgroup != "ws":
            out.append((m.lastgroup, m.group()))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self, k: int = 0) -> tuple[str, str]:
        return self.toks[self.i + k] if self.i + k < len(self.toks) else ("eof", "")

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if value is not None and tok[1] != value:
            raise NotImplementedError(f"expected {value!r}, found {tok[1]!r}")
        self.i += 1
        return tok

    def parse(self) -> Any:
        node = self.comparison()
        if self.peek()[0] != "eof":
            raise NotImplementedError(f"unexpected {self.peek()[1]!r}")
        return node

    def comparison(self) -> Any:
        node = self.additive()
        while self.peek()[1] in _COMPARISONS:
            op = self.take()[1]
            node = ("binary", op, node, self.additive())
        return node

    def additive(self) -> Any:
        node = self.multiplicative()
        while self.peek()[1] in ("+", "-"):
            op = self.take()[1]
            node = ("binary", op, node, self.multiplicative())
        return node

    def multiplicative(self) -> Any:
        node = self.primary()
        while self.peek()[1] in ("*", "/"):
            op = self.take()[1]
            node = ("binary", op, node, self.primary())
        return node

    def by_clause(self) -> list[str]:
        self.take("by")
        self.take("(")
        labels = []
        while self.peek()[1] != ")":
            labels.append(self.take()[1])
            if self.peek()[1] == ",":
                self.take(",")
        self.take(")")
        return labels

    def primary(self) -> Any:
        kind, value = self.peek()
        if kind == "number":
            self.take()
            return ("scalar", float(value))
        if value == "(":
            self.take("(")
            node = self.comparison()
            self.take(")")
            return node
        if kind != "ident":
            raise NotImplementedError(f"unexpected {value!r}")
        if value in _AGGREGATIONS and self.peek(1)[1] in ("(", "by"):
            self.take()
            by = self.by_clause() if self.peek()[1] == "by" else None
            self.take("(")
            param = None
            if value == "topk":
                param = self.comparison()
                self.take(",")
            arg = self.comparison()
            self.take(")")
            if self.peek()[1] == "by":
                by = self.by_clause()
            return ("aggregate", value, by, param, arg)
        if value in _FUNCTIONS and self.peek(1)[1] == "(":
            self.take()
            self.take("(")
            args = []
            while self.peek()[1] != ")":
                args.append(self.comparison())
                if self.peek()[1] == ",":
                    self.take(",")
            self.take(")")
            return ("call", value, args)
        if value in ("by", "without", "on", "ignoring", "offset", "bool"):
            raise NotImplementedError(value)
        return self.selector()

    def selector(self) -> Any:
        name = self.take()[1]
        matchers = []
        if self.peek()[1] == "{":
            self.take("{")
            while self.peek()[1] != "}":
                label = self.take()[1]
                op = self.take()[1]
                kind, raw = self.take()
                if kind != "string" or op not in ("=", "!=", "=~", "!~"):
                    raise NotImplementedError(f"matcher {label}{op}{raw}")
                matchers.append((label, op, raw[1:-1].encode().decode("unicode_escape")))
                if self.peek()[1] == ",":
                    self.take(",")
            self.take("}")
        range_s = None
        if self.peek()[1] == "[":
            self.take("[")
            kind, raw = self.take()
            if kind != "duration":
                raise NotImplementedError(f"range {raw}")
            range_s = int(raw[:-1]) * _DURATION[raw[-1]]
            self.take("]")
        return ("selector", name, tuple(matchers), range_s)


def parse(text: str) -> Any:
    return _Parser(text).parse()


def metric_names(node: Any) -> set[str]:
    """Every metric name a query selects."""
    if not isinstance(node, tuple):
        return set()
    if node[0] == "selector":
        return {node[1]}
    names: set[str] = set()
    for part in node[1:]:
        if isinstance(part, list):
            for p in part:
                names |= metric_names(p)
        else:
            names |= metric_names(part)
    return names


def split_condition(node: Any) -> tuple[Any, str, float] | None:
    """(left side, comparison, threshold) when the query is `<vector expr> <cmp> <number>`."""
    if node[0] == "binary" and node[1] in _COMPARISONS and node[3][0] == "scalar":
        return node[2], node[1], node[3][1]
    return None


# ---- evaluation -----------------------------------------------------------


def _matches(labels: dict[str, str], matchers: tuple[tuple[str, str, str], ...]) -> bool:
    for label, op, want in matchers:
        have = labels.get(label, "")
        ok = {"=": have == want, "!=": have != want,
              "=~": re.fullmatch(want, have) is not None, "!~": re.fullmatch(want, have) is None}[op]
        if not ok:
            return False
    return True


def _select(scrape: Scrape, name: str, matchers: tuple[tuple[str, str, str], ...]) -> dict[Labels, float]:
    return {labels: v for (n, labels), v in scrape.samples.items() if n == name and _matches(dict(labels), matchers)}


def _without_name(labels: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k != "__name__"}


def _range(scrapes: list[Scrape], node: Any) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
    _, name, matchers, range_s = node
    latest = scrapes[-1].t
    points: dict[Labels, list[tuple[float, float]]] = {}
    for s in scrapes:
        if s.t < latest - range_s:
            continue
        for labels, v in _select(s, name, matchers).items():
            points.setdefault(labels, []).append((s.t, v))
    return [({"__name__": name, **dict(labels)}, pts) for labels, pts in points.items()]


def _increase(points: list[tuple[float, float]]) -> float:
    total, prev = 0.0, points[0][1]
    for _, v in points[1:]:
        total += v - prev if v >= prev else v  # a reset: the counter restarted from 0
        prev = v
    return total


def _quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus' histogram_quantile on (upper bound, cumulative count) pairs."""
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    buckets = sorted(buckets)
    if len(buckets) < 2 or not math.isinf(buckets[-1][0]):
        return math.nan
    observations = buckets[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = next(i for i, (_, c) in enumerate(buckets) if c >= rank)
    if b == len(buckets) - 1:
        return buckets[-2][0]
    if b == 0 and buckets[0][0] <= 0:
        return buckets[0][0]
    start = 0.0 if b == 0 else buckets[b - 1][0]
    end, count = buckets[b]
    if b > 0:
        count -= buckets[b - 1][1]
        rank -= buckets[b - 1][1]
    return start + (end - start) * (rank / count) if count else math.nan


def evaluate(node: Any, scrapes: list[Scrape]) -> float | list[Series]:
    """A scalar, or an instant vector, as of the last scrape."""
    kind = node[0]
    if kind == "scalar":
        return node[1]
    if kind == "selector":
        if node[3] is not None:
            raise NotImplementedError("a range vector outside rate()/increase()")
        return [Series({"__name__": node[1], **dict(labels)}, v)
                for labels, v in _select(scrapes[-1], node[1], node[2]).items()]
    if kind == "call":
        fn, args = node[1], node[2]
        if fn == "time":
            return scrapes[-1].t
        if fn in ("rate", "increase"):
            out = []
            for labels, pts in _range(scrapes, args[0]):
                if len(pts) < 2:
                    continue  # as in Prometheus: one sample in the range gives no rate
                inc = _increase(pts)
                out.append(Series(_without_name(labels), inc / (pts[-1][0] - pts[0][0]) if fn == "rate" else inc))
            return out
        if fn == "histogram_quantile":
            q = evaluate(args[0], scrapes)
            vec = evaluate(args[1], scrapes)
            assert isinstance(q, float) and isinstance(vec, list)
            groups: dict[Labels, list[tuple[float, float]]] = {}
            for s in vec:
                key = tuple(sorted((k, v) for k, v in _without_name(s.labels).items() if k != "le"))
                groups.setdefault(key, []).append((float(s.labels["le"]), s.value))
            return [Series(dict(k), _quantile(q, b)) for k, b in groups.items()]
    if kind == "aggregate":
        _, op, by, param, arg = node
        vec = evaluate(arg, scrapes)
        assert isinstance(vec, list)
        groups: dict[Labels, list[Series]] = {}
        for s in vec:
            key = tuple((k, s.labels.get(k, "")) for k in (by or []))
            groups.setdefault(key, []).append(s)
        if op == "topk":
            k = evaluate(param, scrapes)
            assert isinstance(k, float)
            return [s for members in groups.values()
                    for s in sorted(members, key=lambda m: -m.value)[:int(k)]]
        out = []
        for key, members in groups.items():
            values = [m.value for m in members]
            value = {"sum": sum, "count": len, "min": min, "max": max,
                     "avg": lambda xs: sum(xs) / len(xs)}[op](values)
            out.append(Series({k: v for k, v in key if v != ""}, float(value)))
        return out
    if kind == "binary":
        op, left, right = node[1], evaluate(node[2], scrapes), evaluate(node[3], scrapes)
        if isinstance(left, list) and isinstance(right, list):
            raise NotImplementedError("vector-to-vector matching")
        if op in _COMPARISONS:
            cmp = _COMPARISONS[op]
            if isinstance(left, list):
                return [s for s in left if cmp(s.value, right)]
            if isinstance(right, list):
                return [s for s in right if cmp(left, s.value)]
            raise NotImplementedError("scalar comparison without bool")
        fn = _ARITHMETIC[op]
        if isinstance(left, list):
            return [Series(_without_name(s.labels), fn(s.value, right)) for s in left]
        if isinstance(right, list):
            return [Series(_without_name(s.labels), fn(left, s.value)) for s in right]
        return fn(left, right)
    raise NotImplementedError(kind)
