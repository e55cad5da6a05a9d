"""Faces as declarative tables: a row names an operation of the graph and the selection (with aliases)
that gives the face its exact JSON. Rows compile once into persisted documents; no per-endpoint code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from inspect import isawaitable
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    execute,
    parse,
    validate,
)
from graphql.pyutils import Undefined as _UNDEFINED
from graphql.type.definition import GraphQLArgument, GraphQLField
from graphql.utilities.coerce_input_value import coerce_default_value
from strawberry import Schema

from domains.errors import DomainError, ValidationFailed
from gateway.context import Context
from gateway.faces.compiled import CompiledOperation, NotCompilable

MISSING: Any = object()
_BACKREF = "strawberry-definition"


@dataclass(frozen=True)
class Inputs:
    """What a request carries, whatever the face: path parameters, query parameters, a JSON body."""

    path: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    body: Any = MISSING


class Source:
    """Where one argument of the operation comes from; `name` is how the face calls it."""

    name: str = ""

    def extract(self, inputs: Inputs) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Path(Source):
    name: str

    def extract(self, inputs: Inputs) -> Any:
        return inputs.path.get(self.name, MISSING)


@dataclass(frozen=True)
class Query(Source):
    name: str
    default: Any = MISSING
    convert: Callable[[str], Any] | None = None

    def extract(self, inputs: Inputs) -> Any:
        raw = inputs.query.get(self.name, MISSING)
        if raw is MISSING:
            return self.default
        return self.convert(raw) if self.convert else raw


@dataclass(frozen=True)
class SingleListQuery(Source):
    """Orb's SDKs send a list filter as `status[]=paid` (brackets); one value is supported, under either
    spelling, and more than one is refused naming the parameter rather than silently narrowed."""

    name: str

    def extract(self, inputs: Inputs) -> Any:
        query = inputs.query
        values = [v for key in (self.name, f"{self.name}[]")
                  for v in (query.getall(key, []) if hasattr(query, "getall") else [query[key]] if key in query else [])]
        if len(values) > 1:
            raise ValidationFailed(self.name, "filter by one value at a time")
        return values[0] if values else MISSING


@dataclass(frozen=True)
class Body(Source):
    """The JSON body (or RPC params) as an input object; `rename` maps face names to the graph's."""

    rename: Mapping[str, str] = field(default_factory=dict)
    exclude: tuple[str, ...] = ()
    allow: tuple[str, ...] | None = None
    # Rewrites a dialect's alternative spelling of the body into the graph's (applied first).
    normalise: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    name: str = ""

    def extract(self, inputs: Inputs) -> Any:
        body = inputs.body
        if body is MISSING or body is None:
            return {}
        if not isinstance(body, dict):
            raise ValidationFailed("body", "must be a JSON object")
        if self.normalise is not None:
            body = self.normalise(body)
        if self.allow is not None:
            for key in body:
                if key not in self.allow and key not in self.exclude:
                    raise ValidationFailed(key, "is not a field this request accepts")
        return {self.rename.get(k, k): v for k, v in body.items() if k not in self.exclude}


@dataclass(frozen=True)
class Const(Source):
    value: Any
    name: str = ""

    def extract(self, inputs: Inputs) -> Any:
        return self.value


@dataclass(frozen=True)
class BodyField(Source):
    name: str

    def extract(self, inputs: Inputs) -> Any:
        body = inputs.body
        if not isinstance(body, dict):
            return MISSING
        return body.get(self.name, MISSING)


@dataclass(frozen=True)
class Row:
    """One operation of a face: HTTP method and path (or RPC method), the graph field it runs, its
    arguments' sources, and the response shape as a GraphQL selection whose aliases are the face's names."""

    method: str
    path: str
    operation: str
    shape: str = ""
    status: int = 200
    args: Mapping[str, Source] = field(default_factory=dict)
    envelope: Callable[[Any, Inputs], Any] | None = None


class CompiledRow:
    """A row bound to the schema: its document parsed and validated once, its inputs checked on arrival."""

    def __init__(self, row: Row, schema: Schema) -> None:
        self.row = row
        graphql_schema = schema._schema
        if row.operation in graphql_schema.query_type.fields:
            kind, root = "query", graphql_schema.query_type
        elif graphql_schema.mutation_type and row.operation in graphql_schema.mutation_type.fields:
            kind, root = "mutation", graphql_schema.mutation_type
        else:
            raise LookupError(f"{row.method} {row.path}: the graph has no field {row.operation!r}")
        graphql_field: GraphQLField = root.fields[row.operation]
        unknown = set(row.args) - set(graphql_field.args)
        if unknown:
            raise LookupError(f"{row.method} {row.path}: {row.operation} takes no argument {sorted(unknown)}")
        self.arguments: dict[str, GraphQLArgument] = {name: graphql_field.args[name] for name in row.args}
        # Errors name the argument the way the face does (limit, not first).
        self.face_names = {arg: (source.name or "") for arg, source in row.args.items()}
        variables = ", ".join(f"${name}: {_variable_type(arg)}" for name, arg in self.arguments.items())
        call = ", ".join(f"{name}: ${name}" for name in self.arguments)
        selection = f"{{ {row.shape} }}" if row.shape.strip() else ""
        header = f"{kind} Face{_title(row.operation)}" + (f"({variables})" if variables else "")
        self.text = f"{header} {{ result: {row.operation}" + (f"({call})" if call else "") + f" {selection} }}"
        self.document = parse(self.text)
        errors = validate(graphql_schema, self.document)
        if errors:
            raise ValueError(f"{row.method} {row.path}: invalid shape: {errors[0].message}\n{self.text}")
        self.graphql_schema = graphql_schema
        self.kind = kind
        self.compiled: CompiledOperation | None = None
        try:
            self.compiled = CompiledOperation(graphql_schema, self.document)
        except NotCompilable:
            self.compiled = None

    def variables(self, inputs: Inputs, *, coerce: bool = False) -> dict[str, Any]:
        """The operation's variables from the request, every bad value refused naming its field
        (`coerce`: as graphql-core's coercion would leave them, for the compiled path)."""
        values: dict[str, Any] = {}
        for name, source in self.row.args.items():
            value = source.extract(inputs)
            if value is MISSING:
                continue
            prefix = source.name
            values[name] = to_graphql_value(value, self.arguments[name].type, prefix, coerce=coerce)
        for name, argument in self.arguments.items():
            has_default = argument.default_value is not _UNDEFINED
            if isinstance(argument.type, GraphQLNonNull) and name not in values and not has_default:
                raise ValidationFailed(self.face_names[name] or name, "is required")
        return values

    async def run(self, context: Context, inputs: Inputs) -> Any:
        """Execute against the graph; a domain error surfaces as itself, named in the face's terms."""
        variables = self.variables(inputs, coerce=self.compiled is not None)
        if self.kind == "mutation":
            # The shape is resolved inside the transaction: a failure anywhere writes nothing.
            async with context.uow.transaction():
                data = await self._execute(context, variables)
        else:
            data = await self._execute(context, variables)
        return self.row.envelope(data, inputs) if self.row.envelope else data

    async def _execute(self, context: Context, variables: dict[str, Any]) -> Any:
        if self.compiled is not None:
            try:
                return await self.compiled.execute(context, variables, coerced=True)
            except DomainError as exc:
                raise self._in_face_terms(exc) from None
            except GraphQLError as exc:  # raised by a resolver's own argument handling
                raise self._domain_error(exc) from None
        return await self.execute_with_graphql_core(context, variables)

    async def execute_with_graphql_core(self, context: Context, variables: dict[str, Any]) -> Any:
        result = execute(self.graphql_schema, self.document, context_value=context, variable_values=variables)
        if isawaitable(result):
            result = await result
        if result.errors:
            raise self._domain_error(result.errors[0])
        return result.data["result"] if result.data else None

    def _in_face_terms(self, error: DomainError) -> DomainError:
        """The error naming the face's parameter (limit), not the graph's argument (first)."""
        if self.face_names.get(error.field):  # type: ignore[arg-type]
            error.field = self.face_names[error.field]  # type: ignore[index]
        return error

    def _domain_error(self, error: GraphQLError) -> Exception:
        original = error.original_error
        if isinstance(original, DomainError):
            return self._in_face_terms(original)
        if original is not None:
            return original
        return ValidationFailed("body", error.message)


def _variable_type(argument: GraphQLArgument) -> str:
    """An argument with a default takes a nullable variable, so leaving it out means the default."""
    if isinstance(argument.type, GraphQLNonNull) and argument.default_value is not _UNDEFINED:
        return str(argument.type.of_type)
    return str(argument.type)


def _title(name: str) -> str:
    return name[:1].upper() + name[1:]


def _python_name(graphql_field: Any, graphql_name: str) -> str:
    definition = (graphql_field.extensions or {}).get(_BACKREF)
    return getattr(definition, "python_name", None) or graphql_name


def to_graphql_value(value: Any, type_: GraphQLInputType, path: str, *, coerce: bool = False) -> Any:
    """Face JSON -> GraphQL variable value: face (snake_case) keys to the graph's names, unknown keys
    and values of the wrong type refused with the dotted face path of the field.

    With `coerce`, the value is also what graphql-core's variable coercion would make of it (parsed
    scalars, input fields' defaults filled in), so a compiled operation can skip that second walk."""
    label = path or "body"
    if isinstance(type_, GraphQLNonNull):
        if value is None:
            raise ValidationFailed(label, "must not be null")
        return to_graphql_value(value, type_.of_type, path, coerce=coerce)
    if value is None:
        return None
    if isinstance(type_, GraphQLList):
        if not isinstance(value, list):
            raise ValidationFailed(label, "must be a list")
        item_type = type_.of_type
        if _is_json(item_type):
            # JSON parses every value as itself: only a null where one is not allowed needs finding
            # (a 500-event batch skips 500 calls that would each return their item unchanged).
            if isinstance(item_type, GraphQLNonNull) and any(item is None for item in value):
                index = next(i for i, item in enumerate(value) if item is None)
                raise ValidationFailed(f"{path}[{index}]", "must not be null")
            return list(value)
        return [to_graphql_value(item, item_type, f"{path}[{i}]", coerce=coerce) for i, item in enumerate(value)]
    if isinstance(type_, GraphQLInputObjectType):
        if not isinstance(value, dict):
            raise ValidationFailed(label, "must be an object")
        by_python = _input_fields(type_)
        converted: dict[str, Any] = {}
        for key, item in value.items():
            target = by_python.get(key)
            child = f"{path}.{key}" if path else key
            if target is None:
                raise ValidationFailed(child, "is not a field this request accepts")
            graphql_name, field_type = target
            converted[graphql_name] = to_graphql_value(item, field_type, child, coerce=coerce)
        for python_name, (graphql_name, field_type) in by_python.items():
            missing = isinstance(field_type, GraphQLNonNull) and graphql_name not in converted
            if missing and type_.fields[graphql_name].default_value is _UNDEFINED:
                raise ValidationFailed(f"{path}.{python_name}" if path else python_name, "is required")
        if not coerce:
            return converted
        for graphql_name, input_field in type_.fields.items():
            if graphql_name not in converted:
                default = coerce_default_value(input_field)
                if default is not _UNDEFINED:
                    converted[graphql_name] = default
        try:
            return type_.out_type(converted)  # e.g. a @oneOf input's check
        except (GraphQLError, ValueError, TypeError) as exc:
            raise ValidationFailed(label, str(exc)) from None
    if isinstance(type_, (GraphQLScalarType, GraphQLEnumType)):
        if type_.name == "JSON" and not coerce:
            return value
        try:
            parsed = type_.parse_value(value)
        except (GraphQLError, ValueError, TypeError, ArithmeticError) as exc:
            raise ValidationFailed(label, _coercion_message(type_, exc)) from None
        if parsed is None or parsed is _UNDEFINED:
            raise ValidationFailed(label, f"is not a valid {_type_word(type_)}")
        return parsed if coerce else value
    return value


def _is_json(type_: GraphQLInputType) -> bool:
    """The JSON scalar (nullable or not), whose parse_value returns its input unchanged."""
    named = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
    return isinstance(named, GraphQLScalarType) and named.name == "JSON"


_INPUT_FIELDS: dict[str, dict[str, tuple[str, GraphQLInputType]]] = {}


def _input_fields(type_: GraphQLInputObjectType) -> dict[str, tuple[str, GraphQLInputType]]:
    cached = _INPUT_FIELDS.get(type_.name)
    if cached is None:
        cached = {_python_name(f, name): (name, f.type) for name, f in type_.fields.items()}
        _INPUT_FIELDS[type_.name] = cached
    return cached


def _type_word(type_: GraphQLScalarType | GraphQLEnumType) -> str:
    if isinstance(type_, GraphQLEnumType):
        return "value (one of " + ", ".join(type_.values) + ")"
    return {"Int": "integer", "Float": "number", "Boolean": "boolean", "String": "string", "ID": "id",
            "Decimal": "decimal string", "DateTime": "ISO 8601 date-time"}.get(type_.name, type_.name)


def _coercion_message(type_: GraphQLScalarType | GraphQLEnumType, exc: Exception) -> str:
    detail = re.sub(r"\s+", " ", str(exc)).strip()
    return f"must be a {_type_word(type_)}" + (f" ({detail})" if detail and type_.name in ("Decimal", "DateTime") else "")




def query_int(text: str) -> int | str:
    """Query strings are text; an integer parameter is converted here and checked by the graph."""
    try:
        return int(text)
    except ValueError:
        return text


def query_bool(text: str) -> bool | str:
    """`true`/`false` (any case) as booleans; anything else goes on to be refused by the graph."""
    lowered = text.lower()
    return {"true": True, "false": False}.get(lowered, text)
