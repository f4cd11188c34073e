"""The one time rule, checked in the source: engine code adds durations to times only through the helpers.

Python adds a ``timedelta`` to a datetime with a ``ZoneInfo`` on the wall clock and subtracts two datetimes of
one zone by their wall readings. The engine modules therefore do all time arithmetic with
:func:`agent.rules.localtime.after` (instant + duration, in UTC), :func:`agent.rules.localtime.elapsed` (instant - instant)
and :func:`agent.rules.localtime.shift_days` (calendar date + days). This test reads the engine modules' syntax trees
and fails on any other ``+``/``-`` that has a duration on one side and something that is not a duration on the
other, and on any subtraction of two times.

What counts as a duration or a time is inferred from the code itself: calls of ``timedelta(...)`` and of
functions annotated to return one, names annotated or assigned as such (parameters, locals, module constants),
and attributes declared as such on the dataclasses and policy models (``min_gap``, ``follow_up_after``,
``at``, ``sent_at``...). An expression it cannot classify next to a duration is reported too: the fix is
to use the helper, not to hide the type.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "agent"
ENGINE = (
    "durations",
    "localtime",
    "windows",
    "pacing",
    "slots",
    "meetings",
    "notices",
    "status",
    "simulate",
    "rounds",
    "keep_clear",
    "meeting_desk",
    "student_hours",
    "agreement_review",
    "answer_times",
    "agenda",
    "agenda_ahead",
    "agenda_desk",
    "agreement",
)
DECLARATIONS = (*ENGINE, "policy", "invites/objects")  # where the attribute types are declared
PACKAGE = {  # else rules
    "status": "store",
    "rounds": "store",
    "keep_clear": "reconcile",
    "meeting_desk": "reconcile",
    "agenda_ahead": "reconcile",
    "agenda_desk": "reconcile",
    "agreement": "reconcile",
}
HELPERS = {("localtime", "after"), ("localtime", "elapsed"), ("localtime", "shift_days")}

TD, DT, DATE = "timedelta", "datetime", "date"


@dataclass(frozen=True)
class Finding:
    module: str
    line: int
    function: str
    text: str

    def __str__(self) -> str:
        return (
            f"agent/{PACKAGE.get(self.module, 'rules')}/{self.module}.py:{self.line} in {self.function}(): {self.text}"
        )


def _kind_of_annotation(annotation: ast.expr | None) -> str | None:
    if annotation is None:
        return None
    text = ast.unparse(annotation)
    if "timedelta" in text or text in ("Duration", "Duration | None"):
        return TD
    if "datetime" in text:
        return DT
    if text in ("date", "date | None"):
        return DATE
    return None


class Types:
    """What the modules declare: attribute and function kinds, and module constants."""

    def __init__(self, trees: dict[str, ast.Module]) -> None:
        self.attributes: dict[str, str] = {}
        self.functions: dict[str, str] = {
            "timedelta": TD,
            "parse_duration": TD,
            "datetime": DT,
            "fromtimestamp": DT,
            "fromisoformat": DT,
            "astimezone": DT,
            "now": DT,
            "date": DATE,
        }
        self.constants: dict[str, dict[str, str]] = {}
        for module, tree in trees.items():
            constants = self.constants.setdefault(module, {})
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    for statement in node.body:
                        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                            kind = _kind_of_annotation(statement.annotation)
                            if kind:
                                self.attributes[statement.target.id] = kind
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    kind = _kind_of_annotation(node.returns)
                    if kind:
                        is_property = any(ast.unparse(d) == "property" for d in node.decorator_list)
                        (self.attributes if is_property else self.functions)[node.name] = kind
                    for sub in ast.walk(node):  # self.x = <param annotated as a duration or a time>
                        if isinstance(sub, ast.Assign) and len(sub.targets) == 1:
                            target = sub.targets[0]
                            if isinstance(target, ast.Attribute) and isinstance(sub.value, ast.Name):
                                for arg in (*node.args.args, *node.args.kwonlyargs):
                                    kind = _kind_of_annotation(arg.annotation)
                                    if arg.arg == sub.value.id and kind:
                                        self.attributes[target.attr] = kind
            for statement in tree.body:
                if isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Call):
                    kind = self.functions.get(_called_name(statement.value) or "")
                    for target in statement.targets:
                        if isinstance(target, ast.Name) and kind:
                            constants[target.id] = kind


def _called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


class Scanner(ast.NodeVisitor):
    def __init__(self, module: str, types: Types) -> None:
        self.module = module
        self.types = types
        self.function = "<module>"
        self.names: dict[str, str] = dict(types.constants.get(module, {}))
        self.findings: list[Finding] = []

    def kind(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Call):
            if _called_name(node) in ("min", "max") and node.args:
                kinds = {self.kind(arg) for arg in node.args}
                return kinds.pop() if len(kinds) == 1 else None
            return self.types.functions.get(_called_name(node) or "")
        if isinstance(node, ast.Name):
            return self.names.get(node.id)
        if isinstance(node, ast.Attribute):
            return self.types.attributes.get(node.attr)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return self.kind(node.operand)
        if isinstance(node, ast.BinOp):
            left, right = self.kind(node.left), self.kind(node.right)
            if isinstance(node.op, ast.Mult | ast.Div | ast.FloorDiv) and TD in (left, right):
                return TD
            if isinstance(node.op, ast.Add | ast.Sub):
                if left == right == TD:
                    return TD
                if left == DT and right == DT and isinstance(node.op, ast.Sub):
                    return TD
                if TD in (left, right):
                    return DT if DT in (left, right) else DATE if DATE in (left, right) else None
        if isinstance(node, ast.IfExp):
            return self.kind(node.body) or self.kind(node.orelse)
        return None

    def _check(self, node: ast.AST, op: ast.operator, left: ast.expr, right: ast.expr) -> None:
        if not isinstance(op, ast.Add | ast.Sub) or (self.module, self.function) in HELPERS:
            return
        kinds = (self.kind(left), self.kind(right))
        mixed = TD in kinds and kinds != (TD, TD)
        two_times = isinstance(op, ast.Sub) and kinds == (DT, DT)
        if mixed or two_times:
            line = getattr(node, "lineno", 0)
            self.findings.append(Finding(self.module, line, self.function, ast.unparse(node)))

    def _learn(self, target: ast.expr, kind: str | None) -> None:
        if isinstance(target, ast.Name) and kind:
            self.names[target.id] = kind

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        outer_function, outer_names = self.function, self.names
        self.function, self.names = node.name, dict(outer_names)
        for arg in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs):
            self._learn(ast.Name(arg.arg), _kind_of_annotation(arg.annotation))
        # Two passes: the first learns what the locals are, the second checks with that knowledge.
        for _ in range(2):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Assign):
                    for target in sub.targets:
                        if isinstance(target, ast.Tuple) and isinstance(sub.value, ast.Tuple):
                            for part, value in zip(target.elts, sub.value.elts, strict=False):
                                self._learn(part, self.kind(value))
                        self._learn(target, self.kind(sub.value))
                elif isinstance(sub, ast.AnnAssign):
                    self._learn(
                        sub.target, _kind_of_annotation(sub.annotation) or (self.kind(sub.value) if sub.value else None)
                    )
        self.generic_visit(node)
        self.function, self.names = outer_function, outer_names

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_BinOp(self, node: ast.BinOp) -> None:
        self._check(node, node.op, node.left, node.right)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._check(node, node.op, node.target, node.value)
        self.generic_visit(node)


def scan(sources: dict[str, str], engine: Iterable[str] = ENGINE) -> list[Finding]:
    """Every forbidden ``+``/``-`` on times in the ``engine`` modules of ``sources`` (module name -> text)."""
    trees = {name: ast.parse(text) for name, text in sources.items()}
    types = Types(trees)
    findings: list[Finding] = []
    for name in engine:
        scanner = Scanner(name, types)
        scanner.visit(trees[name])
        findings += scanner.findings
    return findings


def _sources(directory: Path = ROOT) -> dict[str, str]:
    return {
        name: (directory / PACKAGE.get(name, "rules") / f"{name}.py").read_text(encoding="utf-8")
        for name in DECLARATIONS
    }


def test_engine_code_adds_durations_to_times_only_through_the_helpers() -> None:
    findings = scan(_sources())
    assert not findings, "time arithmetic outside agent.rules.localtime's helpers (use after/elapsed/shift_days):\n" + (
        "\n".join(str(f) for f in findings)
    )


def test_the_scan_finds_what_it_must_find() -> None:
    planted = """
from datetime import datetime, timedelta, date
from agent.rules.durations import parse_duration
GRID = timedelta(minutes=15)

@dataclass
class Thing:
    at: datetime
    wait: timedelta

def one(moment: datetime, rules: EmailRules, day: date, thing: Thing) -> datetime:
    a = moment + rules.min_gap                  # zoned + duration
    b = thing.at + thing.wait
    c = day + timedelta(days=1)                 # calendar arithmetic belongs in shift_days
    later = moment + GRID
    d = later - moment                          # two times
    span = parse_duration("2d")
    e = datetime.now(UTC) - span
    e += GRID
    ok = GRID * 2 + timedelta(hours=1) - span   # durations with durations: fine
    n = 3 + 4
    return a

def two(x) -> None:
    y = x + timedelta(hours=1)                  # unknown + duration: reported too
"""
    sources = _sources()
    sources["planted"] = planted
    found = [(f.function, f.text) for f in scan(sources, ["planted"])]
    assert found == [
        ("one", "moment + rules.min_gap"),
        ("one", "thing.at + thing.wait"),
        ("one", "day + timedelta(days=1)"),
        ("one", "moment + GRID"),
        ("one", "later - moment"),
        ("one", "datetime.now(UTC) - span"),
        ("one", "e += GRID"),
        ("two", "x + timedelta(hours=1)"),
    ]


def test_the_helpers_are_where_the_arithmetic_is() -> None:
    text = (ROOT / "rules" / "localtime.py").read_text(encoding="utf-8")
    tree = ast.parse(text)
    names = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    assert {name for module, name in HELPERS if module == "localtime"} <= names
