"""GraphQL documents: parse and validate one operation once, within bounds, coerce its variables,
and compile a subscription's selection to the canonical text the C fan-out serialises.

Everything here runs once per operation on the asyncio thread, never per tick.  The bounds are
checked before graphql-core's validation rules run, so that a hostile document (a fragment
bomb, a thousand aliases, nesting that would exhaust the recursive parser) costs no more than
its size: text, then tokens and bracket nesting (one pass of the lexer), then the parse, then the
depth and field count with fragments expanded, and only then validation.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLIncludeDirective,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSkipDirective,
    InlineFragmentNode,
    Node,
    OperationDefinitionNode,
    OperationType,
    SelectionNode,
    SelectionSetNode,
    Source,
    build_schema,
    get_named_type,
    get_operation_ast,
    parse,
    validate,
)
from graphql.execution.values import get_argument_values, get_directive_values, get_variable_values
from graphql.language import Lexer, TokenKind

__all__ = [
    "DEFAULT_LIMITS",
    "MAX_SELECTION_BYTES",
    "DocumentError",
    "DocumentLimits",
    "NotAQuery",
    "PreparedQuery",
    "PreparedSubscription",
    "graphql_schema",
    "prepare",
    "schema_sdl",
]

# The C side refuses a compiled selection longer than this (GRAPHQL_CONTRACT part 2); a document
# whose aliases are long enough to pass the document bound can still exceed it.
MAX_SELECTION_BYTES = 8192

_OPENERS = frozenset({TokenKind.BRACE_L, TokenKind.BRACKET_L, TokenKind.PAREN_L})
_CLOSERS = frozenset({TokenKind.BRACE_R, TokenKind.BRACKET_R, TokenKind.PAREN_R})


@dataclass(frozen=True)
class DocumentLimits:
    """The bounds of one document.  max_fields counts every field the operations select with
    fragments expanded (a fragment spread twice counts twice), before fields are merged; depth
    counts fields, so `{metricsUpdate{topSkills{skillName}}}` is 3 deep.  A query that selects
    introspection fields only gets INTROSPECTION_LIMITS instead of the defaults: the standard
    introspection query (GraphiQL's, Apollo's, `gql`'s fetch_schema_from_transport) is 15 deep
    and selects about 220 fields, and what it can cost is bounded by the schema itself."""

    max_bytes: int = 16 * 1024
    max_tokens: int = 2000
    max_depth: int = 8
    max_fields: int = 200

    @property
    def max_nesting(self) -> int:
        """Brackets of any kind open at once: the selection depth plus room for argument values.
        It bounds the recursion of graphql-core's parser, which a 16 KiB `{a{a{a...` would exhaust."""
        return self.max_depth + 16


DEFAULT_LIMITS = DocumentLimits()
INTROSPECTION_LIMITS = DocumentLimits(max_depth=16, max_fields=400)
_INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})


def _introspection_only(document: DocumentNode) -> bool:
    """Every operation is a query whose root fields are all introspection fields."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    return bool(operations) and all(
        op.operation is OperationType.QUERY
        and all(isinstance(s, FieldNode) and s.name.value in _INTROSPECTION_ROOTS for s in op.selection_set.selections)
        for op in operations
    )


class DocumentError(Exception):
    """The operation cannot run: GraphQL errors (with locations where the document has them)."""

    def __init__(self, errors: list[GraphQLError]) -> None:
        super().__init__("; ".join(e.message for e in errors))
        self.errors = errors

    @property
    def formatted(self) -> list[dict[str, Any]]:
        """The errors as a GraphQL response's `errors` list."""
        return [dict(e.formatted) for e in self.errors]


class NotAQuery(DocumentError):
    """A subscription where only queries can run (over HTTP)."""


@dataclass(frozen=True)
class PreparedQuery:
    """A validated query operation, its variables already known to coerce."""

    document: DocumentNode
    operation_name: str | None
    variables: dict[str, Any]


@dataclass(frozen=True)
class PreparedSubscription:
    """What ServerBase.gql_subscribe takes: the skill filter, the compiled selection
    (GRAPHQL_CONTRACT part 2) and the recovery position (since_epoch None: no `since`)."""

    skill: str | None
    selection: str
    since_epoch: str | None
    since_seq: int


@functools.cache
def schema_sdl() -> str:
    """The text of schema.graphql, as shipped in the package (GET /graphql/schema serves it)."""
    return resources.files("session_buddy.realtime").joinpath("schema.graphql").read_text("utf-8")


@functools.cache
def graphql_schema() -> GraphQLSchema:
    """The schema built from schema_sdl(), once per process."""
    return build_schema(schema_sdl())


def _error(message: str, source: Source, node: Node | None = None, position: int | None = None) -> DocumentError:
    if node is not None:
        return DocumentError([GraphQLError(message, node)])
    return DocumentError([GraphQLError(message, source=source, positions=[position or 0])])


def _check_size(source: Source, limits: DocumentLimits) -> None:
    body = source.body
    if len(body.encode("utf-8", "surrogatepass")) <= limits.max_bytes:
        return
    size = 0
    for i, ch in enumerate(body):  # the first character past the bound is where the error is
        code = ord(ch)
        size += 1 if code < 0x80 else 2 if code < 0x800 else 3 if code < 0x10000 else 4
        if size > limits.max_bytes:
            raise _error(f"The document is larger than {limits.max_bytes} bytes.", source, position=i)


def _check_nesting(source: Source, limits: DocumentLimits) -> None:
    """Bracket nesting, in one pass of the lexer (which does not recurse).  A lexical error or
    too many tokens ends the pass: the parse reports those, with its own messages."""
    lexer = Lexer(source)
    depth = tokens = 0
    try:
        token = lexer.advance()
        while token.kind is not TokenKind.EOF and tokens < limits.max_tokens:
            tokens += 1
            if token.kind in _OPENERS:
                depth += 1
                if depth > limits.max_nesting:
                    raise _error(
                        f"The document nests brackets more than {limits.max_nesting} deep.", source,
                        position=token.start,
                    )
            elif token.kind in _CLOSERS:
                depth -= 1
            token = lexer.advance()
    except GraphQLError:
        return


def _check_cost(document: DocumentNode, limits: DocumentLimits) -> None:
    """Depth and field count of every operation with fragments expanded, in document order and
    without recursion.  Unknown fragments and cycles are left to validation (a cycle is not
    followed here)."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    source = document.loc.source if document.loc is not None else Source("")
    stack: list[tuple[SelectionNode, int, frozenset[str]]] = []

    def push(selection_set: SelectionSetNode, depth: int, expanding: frozenset[str]) -> None:
        stack.extend((s, depth, expanding) for s in reversed(selection_set.selections))

    for definition in reversed(document.definitions):
        if isinstance(definition, OperationDefinitionNode):
            push(definition.selection_set, 1, frozenset())
    fields = spreads = 0
    while stack:
        selection, depth, expanding = stack.pop()
        if isinstance(selection, FieldNode):
            fields += 1
            if fields > limits.max_fields:
                raise _error(f"The document selects more than {limits.max_fields} fields.", source, selection)
            if depth > limits.max_depth:
                raise _error(f"The document nests fields more than {limits.max_depth} deep.", source, selection)
            if selection.selection_set is not None:
                push(selection.selection_set, depth + 1, expanding)
        elif isinstance(selection, InlineFragmentNode):
            push(selection.selection_set, depth, expanding)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is None or name in expanding:
                continue
            # Spreads cost work even when they select no field (`fragment A on Query {...B ...B}`).
            spreads += 1
            if spreads > limits.max_fields:
                raise _error(
                    f"The document expands more than {limits.max_fields} fragment spreads.", source, selection
                )
            push(fragment.selection_set, depth, expanding | {name})
    # Every fragment as written, used or not: an unused one is not expanded above, and still
    # costs validation its time.
    written = 0
    sets = [d.selection_set for d in document.definitions if isinstance(d, FragmentDefinitionNode)]
    while sets:
        for selection in sets.pop().selections:
            if isinstance(selection, FieldNode):
                written += 1
                if written > limits.max_fields:
                    raise _error(f"The document selects more than {limits.max_fields} fields.", source, selection)
            selection_set = getattr(selection, "selection_set", None)
            if selection_set is not None:
                sets.append(selection_set)


def _parse(text: str, limits: DocumentLimits) -> DocumentNode:
    source = Source(text, "GraphQL request")
    _check_size(source, limits)
    _check_nesting(source, limits)
    try:
        document = parse(source, max_tokens=limits.max_tokens)
    except GraphQLError as exc:
        raise DocumentError([exc]) from None
    if limits is DEFAULT_LIMITS and _introspection_only(document):
        limits = INTROSPECTION_LIMITS
    _check_cost(document, limits)
    return document


def _validate(document: DocumentNode) -> DocumentNode:
    errors = validate(graphql_schema(), document)
    if errors:
        raise DocumentError(list(errors))
    return document


@functools.lru_cache(maxsize=256)
def _valid_document(query: str) -> DocumentNode:
    """A document parsed, bounded and validated once per distinct text: a thousand dashboards
    send the same subscription, and graphql-core never changes a document it is given.  Refused
    documents are not kept (lru_cache keeps no exception), so hostile ones cannot fill it."""
    return _validate(_parse(query, DEFAULT_LIMITS))


def _operation(document: DocumentNode, operation_name: str | None) -> OperationDefinitionNode:
    operation = get_operation_ast(document, operation_name)
    if operation is not None:
        return operation
    if operation_name is not None:
        raise DocumentError([GraphQLError(f"Unknown operation named '{operation_name}'.")])
    raise DocumentError([GraphQLError("Must provide operation name if query contains multiple operations.")])


def prepare(
    query: str,
    variables: Mapping[str, Any] | None = None,
    operation_name: str | None = None,
    *,
    subscriptions: bool = True,
    limits: DocumentLimits = DEFAULT_LIMITS,
) -> PreparedQuery | PreparedSubscription:
    """Parse, bound, validate and coerce one request.  DocumentError when it cannot run;
    NotAQuery for a subscription when subscriptions is False (HTTP)."""
    schema = graphql_schema()
    document = _valid_document(query) if limits is DEFAULT_LIMITS else _validate(_parse(query, limits))
    operation = _operation(document, operation_name)
    if schema.get_root_type(operation.operation) is None:
        # graphql-core 3.3 validation says so already; 3.2 has no rule for it.
        raise DocumentError([GraphQLError(
            f"The {operation.operation.value} operation is not supported by the schema.", operation
        )])
    inputs = dict(variables) if variables is not None else {}
    coerced = get_variable_values(schema, operation.variable_definitions or (), inputs)
    if isinstance(coerced, list):
        raise DocumentError(coerced)
    if operation.operation is OperationType.SUBSCRIPTION:
        if not subscriptions:
            raise NotAQuery([GraphQLError(
                "Subscriptions are served over WebSocket (subprotocol graphql-transport-ws), not over HTTP.",
                operation,
            )])
        return _compile_subscription(schema, document, operation, coerced)
    name = operation.name.value if operation.name is not None else None
    return PreparedQuery(document, name, inputs)


# ---- the compiled selection of a subscription ----


@dataclass
class _Compiling:
    fragments: dict[str, FragmentDefinitionNode]
    variables: Any  # graphql-core's coerced variable values, passed back to it as they are


def _included(node: FieldNode | InlineFragmentNode | FragmentSpreadNode, ctx: _Compiling) -> bool:
    skip = get_directive_values(GraphQLSkipDirective, node, ctx.variables)
    if skip is not None and skip.get("if") is True:
        return False
    include = get_directive_values(GraphQLIncludeDirective, node, ctx.variables)
    return include is None or include.get("if") is not False


def _collect(
    groups: dict[str, list[FieldNode]], parent: GraphQLObjectType, selection_set: SelectionSetNode,
    ctx: _Compiling, visited: set[str],
) -> None:
    """GraphQL's CollectFields: the fields of selection_set by response key, in order, with
    fragments expanded (each named one once) and @skip/@include applied."""
    for selection in selection_set.selections:
        if not _included(selection, ctx):  # type: ignore[arg-type]  # every selection node kind has directives
            continue
        if isinstance(selection, FieldNode):
            key = selection.alias.value if selection.alias is not None else selection.name.value
            groups.setdefault(key, []).append(selection)
        elif isinstance(selection, InlineFragmentNode):
            condition = selection.type_condition
            if condition is None or condition.name.value == parent.name:
                _collect(groups, parent, selection.selection_set, ctx, visited)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in visited:
                continue
            visited.add(name)
            fragment = ctx.fragments[name]
            if fragment.type_condition.name.value == parent.name:
                _collect(groups, parent, fragment.selection_set, ctx, visited)


def _emit(parent: GraphQLObjectType, groups: dict[str, list[FieldNode]], ctx: _Compiling) -> str:
    items = []
    for key, nodes in groups.items():
        name = nodes[0].name.value
        if name == "__typename":
            items.append(f"{key}:__typename")
            continue
        field_type = get_named_type(parent.fields[name].type)
        if not isinstance(field_type, GraphQLObjectType):
            items.append(f"{key}:{name}")
            continue
        # Merged fields: the selections of every node under this key, as one (field merging).
        sub: dict[str, list[FieldNode]] = {}
        for node in nodes:
            if node.selection_set is not None:
                _collect(sub, field_type, node.selection_set, ctx, set())
        if not sub:
            raise DocumentError([GraphQLError(
                f"Field '{key}' selects no field once @skip and @include are applied.", nodes[0]
            )])
        items.append(f"{key}:{name}{_emit(field_type, sub, ctx)}")
    return "{" + ",".join(items) + "}"


def _compile_subscription(
    schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode, variables: Any
) -> PreparedSubscription:
    root = schema.subscription_type
    assert root is not None  # validation refuses a subscription otherwise
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    ctx = _Compiling(fragments, variables)
    groups: dict[str, list[FieldNode]] = {}
    _collect(groups, root, operation.selection_set, ctx, set())
    if len(groups) != 1:  # validation allows exactly one root field; this holds the invariant
        raise DocumentError([GraphQLError("A subscription must select exactly one field.", operation)])
    node = next(iter(groups.values()))[0]
    arguments = get_argument_values(root.fields[node.name.value], node, variables)
    selection = _emit(root, groups, ctx)
    if len(selection.encode("utf-8")) > MAX_SELECTION_BYTES:
        raise DocumentError([GraphQLError(
            f"The selection is longer than {MAX_SELECTION_BYTES} bytes once compiled (shorten the aliases).",
            operation,
        )])
    since = arguments.get("since")
    return PreparedSubscription(
        skill=arguments.get("skill"),
        selection=selection,
        since_epoch=since["epoch"] if since is not None else None,
        since_seq=since["seq"] if since is not None else 0,
    )
