"""Query documents sent to `/graphql`, compiled once and then run without graphql-core's executor.

Front ends send the same few documents over and over. A query document with one root field and no
fragments or directives is parsed and validated once (with the schema's own rules and limits),
compiled into the serializer the faces use (gateway/faces/compiled.py), and remembered by its text.
The compiled path answers only the plain success: on any error (an unknown id, a bad variable) the
request goes on to Strawberry's executor, which builds GraphQL's error response. A query has no side
effects, so running it a second time for that is safe; mutations always take Strawberry's path.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    Visitor,
    parse,
    specified_rules,
    validate,
    visit,
)

from gateway.faces.compiled import CompiledOperation, NotCompilable


class CompiledDocument:
    __slots__ = ("key", "name", "query")

    def __init__(self, query: CompiledOperation, key: str, name: str | None) -> None:
        self.query, self.key, self.name = query, key, name


class CompiledDocuments:
    """Query text -> its compiled form, or None for a text that takes Strawberry's path; bounded LRU."""

    def __init__(self, schema: GraphQLSchema, *, rules: list[Any], max_tokens: int, maxsize: int = 512) -> None:
        self.schema, self.max_tokens, self.maxsize = schema, max_tokens, maxsize
        self.rules = [*specified_rules, *rules]
        self._documents: OrderedDict[str, CompiledDocument | None] = OrderedDict()

    def lookup(self, text: str, operation_name: Any) -> CompiledDocument | None:
        if text in self._documents:
            document = self._documents[text]
            self._documents.move_to_end(text)
        else:
            document = self._documents[text] = self._compile(text)
            if len(self._documents) > self.maxsize:
                self._documents.popitem(last=False)
        if document is None or (operation_name is not None and operation_name != document.name):
            return None
        return document

    def _compile(self, text: str) -> CompiledDocument | None:
        try:
            document = parse(text, max_tokens=self.max_tokens)
        except GraphQLError:
            return None
        if len(document.definitions) != 1:
            return None
        operation = document.definitions[0]
        if not isinstance(operation, OperationDefinitionNode) or operation.operation != OperationType.QUERY:
            return None
        selections = operation.selection_set.selections
        if len(selections) != 1 or not isinstance(selections[0], FieldNode) or selections[0].directives:
            return None
        root = selections[0]
        assert self.schema.query_type is not None
        if root.name.value not in self.schema.query_type.fields:  # __typename, __schema, a typo
            return None
        if _uses_variables(root.selection_set) or validate(self.schema, document, self.rules):
            return None
        try:
            compiled = CompiledOperation(self.schema, document)
        except NotCompilable:
            return None
        key = root.alias.value if root.alias else root.name.value
        return CompiledDocument(compiled, key, operation.name.value if operation.name else None)


class _VariableFinder(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.found = False

    def enter_variable(self, node: VariableNode, *_: Any) -> Any:
        self.found = True
        return self.BREAK


def _uses_variables(selection_set: SelectionSetNode | None) -> bool:
    """The compiler works out arguments below the root once, so they must be literals."""
    if selection_set is None:
        return False
    finder = _VariableFinder()
    visit(selection_set, finder)
    return finder.found
