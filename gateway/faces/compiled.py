"""A persisted query document compiled once into a straight-line serializer over the same resolvers.

graphql-core spends several microseconds on every resolved field (paths, abort checks, awaitable
probes); a 100-row list of Orb customers is ~4,000 fields. A face's documents are fixed, so their
plan is worked out once: per field, the resolver to call (the schema's own, or plain attribute
access where Strawberry would do exactly that) and how to render its value; the plan is then
generated as Python source, one function per selection, with no per-field dispatch left at run
time. Awaitable results (dataloader edges) are collected level by level and awaited together, so
batching is preserved. `tests/faces/test_compiled.py` checks that both paths give identical JSON.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from inspect import isawaitable
from operator import attrgetter
from types import GeneratorType
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLScalarType,
    GraphQLSchema,
    NamedTypeNode,
    NonNullTypeNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
)
from graphql.execution.get_variable_signature import get_variable_signature
from graphql.execution.values import (
    VariableValues,
    VariableValueSource,
    get_argument_values,
    get_variable_values,
)
from strawberry.types.info import Info as StrawberryInfo

from domains.errors import ValidationFailed

_BACKREF = "strawberry-definition"


class NotCompilable(Exception):
    """The document uses something the compiler does not handle; the row keeps graphql-core."""


@dataclass
class Plan:
    kind: str  # "leaf" | "list" | "object"
    serialize: Callable[[Any], Any] | None = None
    item: Plan | None = None
    fields: list[FieldPlan] = field(default_factory=list)
    type_name: str = ""


@dataclass
class FieldPlan:
    alias: str
    plan: Plan
    getter: Callable[[Any], Any] | None  # plain attribute access
    resolver: Callable[..., Any] | None  # the schema's resolver, called with (source, info, **args)
    attribute: str | None = None  # the attribute's name, read inline by the generated code
    node: FieldNode | None = None
    definition: Any = None
    parent_type: GraphQLObjectType | None = None
    static_args: dict[str, Any] | None = None
    direct: DirectCall | None = None


@dataclass(frozen=True)
class DirectCall:
    """A Strawberry resolver with no arguments, extensions or permissions, called without the
    argument-conversion wrapper it would not need (what Strawberry itself would end up calling)."""

    function: Callable[..., Any]
    passes_self: bool
    root_name: str | None
    info_name: str | None
    strawberry_field: Any

    @classmethod
    def of(cls, definition: Any) -> DirectCall | None:
        strawberry_field = (definition.extensions or {}).get(_BACKREF)
        resolver = getattr(strawberry_field, "base_resolver", None)
        if resolver is None or strawberry_field.extensions or strawberry_field.permission_classes or resolver.arguments:
            return None
        return cls(
            function=resolver.wrapped_func,
            passes_self=resolver.self_parameter is not None,
            root_name=resolver.root_parameter.name if resolver.root_parameter else None,
            info_name=resolver.info_parameter.name if resolver.info_parameter else None,
            strawberry_field=strawberry_field,
        )


def _plan_for(type_: GraphQLOutputType, selection: SelectionSetNode | None, schema: GraphQLSchema) -> Plan:
    if isinstance(type_, GraphQLNonNull):
        return _plan_for(type_.of_type, selection, schema)
    if isinstance(type_, GraphQLList):
        return Plan("list", item=_plan_for(type_.of_type, selection, schema))
    if isinstance(type_, (GraphQLScalarType, GraphQLEnumType)):
        return Plan("leaf", serialize=type_.serialize, type_name=type_.name)
    if not isinstance(type_, GraphQLObjectType) or selection is None:
        raise NotCompilable(f"cannot compile a selection on {type_}")
    fields: list[FieldPlan] = []
    for node in selection.selections:
        if not isinstance(node, FieldNode) or node.directives:
            raise NotCompilable("fragments and directives are not compiled")
        name = node.name.value
        if name == "__typename":
            type_name = type_.name
            fields.append(FieldPlan(node.alias.value if node.alias else name, Plan("leaf", serialize=lambda v: v),
                                    getter=lambda _source, _n=type_name: _n, resolver=None))
            continue
        definition = type_.fields[name]
        child = _plan_for(definition.type, node.selection_set, schema)
        alias = node.alias.value if node.alias else name
        if getattr(definition.resolve, "_is_default", False) and not node.arguments:
            python_name = getattr((definition.extensions or {}).get(_BACKREF), "python_name", name)
            fields.append(FieldPlan(alias, child, getter=attrgetter(python_name), resolver=None,
                                    attribute=python_name if python_name.isidentifier() else None))
        else:
            if definition.resolve is None:
                raise NotCompilable(f"{type_.name}.{name} has no resolver")
            fields.append(FieldPlan(alias, child, getter=None, resolver=definition.resolve, node=node,
                                    definition=definition, parent_type=type_,
                                    direct=None if node.arguments else DirectCall.of(definition)))
    return Plan("object", fields=fields)


class _Execution:
    """Per-request state the generated functions share: resolver infos (made when first needed) and
    awaitables left to wait on."""

    __slots__ = ("context", "infos", "pending", "query", "variables")

    def __init__(self, query: CompiledOperation, context: Any, variables: dict[str, Any]) -> None:
        self.query, self.context, self.variables = query, context, variables
        self.infos: list[Any] = [None] * len(query.resolver_fields)
        self.pending: list[tuple[dict[str, Any], str, Awaitable[Any], Callable[[Any, _Execution], Any]]] = []

    def info(self, slot: int) -> Any:
        info = self.infos[slot]
        if info is None:
            field_plan = self.query.resolver_fields[slot]
            info = self.query._info(field_plan.node, field_plan.definition, field_plan.parent_type,  # type: ignore[arg-type]
                                    self.context, self.variables)
            if field_plan.direct is not None:
                info = StrawberryInfo(_raw_info=info, _field=field_plan.direct.strawberry_field)
            self.infos[slot] = info
        return info


# Scalars whose serializer returns a value of this exact class unchanged: skip the call for them.
_PASS_THROUGH = {"String": "str", "ID": "str", "Boolean": "bool", "Int": "int"}


# Classes of resolver results found not awaitable. Whether an object is awaitable depends on its class
# alone (`__await__`, or registration with collections.abc.Awaitable), except for a generator, which
# a coroutine decorator may have flagged; the set grows with the classes resolvers return, no further.
_PLAIN_CLASSES: set[type] = set()


def _remember_plain(value: Any) -> None:
    if value.__class__ is not GeneratorType:
        _PLAIN_CLASSES.add(value.__class__)


class _Generator:
    """Writes the Python source of a plan: one function per object selection."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[str, Any] = {"isawaitable": isawaitable, "Future": asyncio.Future,
                                      "PLAIN": _PLAIN_CLASSES, "plain": _remember_plain}
        self.resolver_fields: list[FieldPlan] = []
        self._counter = 0

    def _name(self, prefix: str, value: Any) -> str:
        self._counter += 1
        name = f"{prefix}{self._counter}"
        self.names[name] = value
        return name

    def expression(self, plan: Plan, var: str, depth: int = 0) -> str:
        """Source of an expression rendering the non-null value in `var` as `plan` says."""
        if plan.kind == "leaf":
            serializer = self._name("S", plan.serialize)
            kind = _PASS_THROUGH.get(getattr(plan, "type_name", ""))
            if kind:
                return f"({var} if {var}.__class__ is {kind} else {serializer}({var}))"
            return f"{serializer}({var})"
        if plan.kind == "list":
            item = f"i{depth}"
            inner = self.expression(plan.item, item, depth + 1)  # type: ignore[arg-type]
            return f"[None if {item} is None else {inner} for {item} in {var}]"
        return f"{self.object_function(plan)}({var}, X)"

    def converter(self, plan: Plan) -> str:
        """A function (value, X) -> rendered value, for results that arrive later."""
        self._counter += 1
        name = f"C{self._counter}"
        self.lines += [f"def {name}(r, X):", f"    return None if r is None else {self.expression(plan, 'r')}", ""]
        return name

    def object_function(self, plan: Plan) -> str:
        self._counter += 1
        name = f"O{self._counter}"
        lines = [f"def {name}(v, X):", "    out = {}"]
        for field_plan in plan.fields:
            alias = repr(field_plan.alias)
            if field_plan.getter is not None:
                if field_plan.attribute is not None:
                    lines.append(f"    r = v.{field_plan.attribute}")
                else:
                    lines.append(f"    r = {self._name('G', field_plan.getter)}(v)")
                lines.append(f"    out[{alias}] = None if r is None else {self.expression(field_plan.plan, 'r')}")
                continue
            slot = len(self.resolver_fields)
            self.resolver_fields.append(field_plan)
            direct = field_plan.direct
            if direct is not None:
                function = self._name("D", direct.function)
                args = ["v"] if direct.passes_self else []
                if direct.root_name:
                    args.append(f"{direct.root_name}=v")
                if direct.info_name:
                    args.append(f"{direct.info_name}=X.info({slot})")
                lines.append(f"    r = {function}({', '.join(args)})")
            else:
                resolver = self._name("R", field_plan.resolver)
                arguments = self._name("A", field_plan.static_args or {})
                lines.append(f"    r = {resolver}(v, X.info({slot}), **{arguments})")
            later = self.converter(field_plan.plan)
            rendered = self.expression(field_plan.plan, "r")
            lines.append("    if r is None:")
            lines.append(f"        out[{alias}] = None")
            # Most resolvers return plain values: a class once found not awaitable skips the probe
            # (isawaitable's ABC check costs more than the rest of the field).
            lines.append("    elif r.__class__ in PLAIN:")
            lines.append(f"        out[{alias}] = {rendered}")
            # A loader's future for a key it already holds (a primed row) is done: no need to wait.
            lines.append("    elif r.__class__ is Future and r.done():")
            lines.append(f"        out[{alias}] = {later}(r.result(), X)")
            lines.append("    elif isawaitable(r):")
            lines.append(f"        out[{alias}] = None")
            lines.append(f"        X.pending.append((out, {alias}, r, {later}))")
            lines.append("    else:")
            lines.append("        plain(r)")
            lines.append(f"        out[{alias}] = {rendered}")
        lines += ["    return out", ""]
        self.lines += lines
        return name

    def build(self, plan: Plan) -> Callable[[Any, _Execution], Any]:
        entry = self.converter(plan)
        namespace = dict(self.names)
        exec(compile("\n".join(self.lines), "<compiled face document>", "exec"), namespace)  # noqa: S102
        return namespace[entry]  # type: ignore[no-any-return]


def _root_call(definition: Any) -> Callable[[GraphQLResolveInfo, dict[str, Any]], Any] | None:
    """Call a root resolver whose arguments are all plain scalars without Strawberry's per-call
    argument conversion (there is nothing to convert); anything richer keeps the full wrapper."""
    strawberry_field = (definition.extensions or {}).get(_BACKREF)
    resolver = getattr(strawberry_field, "base_resolver", None)
    if resolver is None or strawberry_field.extensions or strawberry_field.permission_classes:
        return None
    if len(resolver.arguments) != len(definition.args):
        return None
    names: dict[str, str] = {}
    for argument, (graphql_name, graphql_argument) in zip(resolver.arguments, definition.args.items(), strict=True):
        if not isinstance(get_named_type(graphql_argument.type), GraphQLScalarType):
            return None
        names[graphql_name] = argument.python_name
    function, info_name = resolver.wrapped_func, resolver.info_parameter.name if resolver.info_parameter else None
    passes_self = resolver.self_parameter is not None

    def call(info: GraphQLResolveInfo, arguments: dict[str, Any]) -> Any:
        kwargs = {names[name]: value for name, value in arguments.items()}
        if info_name:
            kwargs[info_name] = StrawberryInfo(_raw_info=info, _field=strawberry_field)
        return function(None, **kwargs) if passes_self else function(**kwargs)

    return call


# Built-in scalars whose coercion returns a value of this class unchanged. (Int is left out: it also
# checks the 32-bit range.)
_UNCHANGED_BY_COERCION = {"ID": str, "String": str, "Boolean": bool}


def _plain_variables(schema: GraphQLSchema, operation: OperationDefinitionNode) -> dict[str, tuple[type, Any]] | None:
    """Variable name -> (the class a value needs to skip coercion, its signature), when every variable
    is a non-null built-in scalar without a default; None otherwise."""
    plain: dict[str, tuple[type, Any]] = {}
    for definition in operation.variable_definitions or ():
        type_node = definition.type
        if not isinstance(type_node, NonNullTypeNode) or definition.default_value is not None:
            return None
        named = type_node.type
        kind = _UNCHANGED_BY_COERCION.get(named.name.value) if isinstance(named, NamedTypeNode) else None
        signature = get_variable_signature(schema, definition)
        if kind is None or isinstance(signature, GraphQLError):
            return None
        plain[definition.variable.name.value] = (kind, signature)
    return plain


class CompiledOperation:
    """One document of the shape `query(...) { result: field(args) { ... } }` (or a mutation of that
    shape: one root field, which graphql-core would also run alone), compiled."""

    def __init__(self, schema: GraphQLSchema, document: DocumentNode) -> None:
        operation = document.definitions[0]
        if not isinstance(operation, OperationDefinitionNode) or operation.operation.value not in ("query", "mutation"):
            raise NotCompilable("only queries and mutations are compiled")
        root = operation.selection_set.selections[0]
        assert isinstance(root, FieldNode)
        self.schema, self.operation, self.root_node = schema, operation, root
        root_type = schema.query_type if operation.operation.value == "query" else schema.mutation_type
        assert root_type is not None
        self.root_type = root_type
        self.root_definition = self.root_type.fields[root.name.value]
        self.root_call = _root_call(self.root_definition)
        plan = _plan_for(self.root_definition.type, root.selection_set, schema)
        self._check_field_arguments(plan)
        generator = _Generator()
        self.render = generator.build(plan)
        self.resolver_fields = generator.resolver_fields
        self.source = "\n".join(generator.lines)
        self.plain_variables = _plain_variables(schema, operation)
        signatures = {node.variable.name.value: get_variable_signature(schema, node)
                      for node in operation.variable_definitions or ()}
        self.signatures = {name: signature for name, signature in signatures.items()
                           if not isinstance(signature, GraphQLError)}

    def _check_field_arguments(self, plan: Plan) -> None:
        """Arguments below the root must be literals, so they are worked out once here."""
        if plan.kind == "list" and plan.item:
            self._check_field_arguments(plan.item)
        for field_plan in plan.fields:
            if field_plan.node is not None:
                try:
                    field_plan.static_args = get_argument_values(field_plan.definition, field_plan.node, None)
                except GraphQLError as exc:
                    raise NotCompilable(str(exc)) from exc
            self._check_field_arguments(field_plan.plan)

    def _info(self, node: FieldNode, definition: Any, parent: GraphQLObjectType, context: Any,
              variables: dict[str, Any]) -> GraphQLResolveInfo:
        return GraphQLResolveInfo(node.name.value, [node], definition.type, parent, None, self.schema, {}, None,  # type: ignore[arg-type]
                                  self.operation, variables, context, isawaitable, None, None)  # type: ignore[arg-type]

    def _coerce(self, variables: dict[str, Any]) -> Any:
        # Values that already are what the scalar's coercion would return need none (a face's id);
        # anything else, and every absent variable, takes graphql-core's full coercion.
        plain = self.plain_variables
        if plain is not None and len(variables) == len(plain):
            for name, (kind, _) in plain.items():
                if variables.get(name).__class__ is not kind:
                    break
            else:
                sources = {name: VariableValueSource(signature, variables[name]) for name, (_, signature) in plain.items()}
                return VariableValues(sources, variables)
        coerced = get_variable_values(self.schema, self.operation.variable_definitions or (), variables)
        if isinstance(coerced, list):
            raise ValidationFailed("body", coerced[0].message)
        return coerced

    async def execute(self, context: Any, variables: dict[str, Any], *, coerced: bool = False) -> Any:
        """Run the document. `coerced`: the variables are already what graphql-core's coercion would
        make of them (a face's inputs, checked and converted by engine.to_graphql_value)."""
        if coerced:
            sources = {name: VariableValueSource(self.signatures[name], value) for name, value in variables.items()}
            coerced_values: Any = VariableValues(sources, variables)
        else:
            coerced_values = self._coerce(variables)
        return await self._run(context, coerced_values)

    async def _run(self, context: Any, coerced: Any) -> Any:
        root_info = self._info(self.root_node, self.root_definition, self.root_type, context, coerced)
        arguments = get_argument_values(self.root_definition, self.root_node, coerced)
        if self.root_call is not None:
            value = self.root_call(root_info, arguments)
        else:
            value = self.root_definition.resolve(None, root_info, **arguments)  # type: ignore[misc]
        if isawaitable(value):
            value = await value
        state = _Execution(self, context, coerced)
        data = self.render(value, state)
        while state.pending:
            batch, state.pending = state.pending, []
            if len(batch) == 1:  # one edge (a single fetch): no gather machinery needed
                results = [await batch[0][2]]
            else:
                results = await asyncio.gather(*(awaitable for _, _, awaitable, _ in batch))
            for (container, alias, _, convert), result in zip(batch, results, strict=True):
                container[alias] = convert(result, state)
        return data
