"""GraphQL's error shape: `extensions.code` and `extensions.field` from the domain's typed errors."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

from graphql import ExecutionResult, GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from domains.errors import DomainError

log = logging.getLogger("accrual.graphql")

INTERNAL = "INTERNAL_SERVER_ERROR"


def describe(error: GraphQLError) -> GraphQLError:
    """The same error with a code (and field) a client can dispatch on; unexpected ones masked."""
    original = error.original_error
    if isinstance(original, DomainError):
        extensions = {"code": original.code}
        if original.field:
            extensions["field"] = original.field
        return GraphQLError(original.message, error.nodes, error.source, error.positions, error.path,
                            original, extensions)
    if original is not None and not isinstance(original, GraphQLError):
        log.error("unexpected error in a resolver", exc_info=original)
        return GraphQLError("Internal server error", error.nodes, error.source, error.positions, error.path,
                            original, {"code": INTERNAL})
    if error.extensions and "code" in error.extensions:
        return error
    return GraphQLError(error.message, error.nodes, error.source, error.positions, error.path, original,
                        {**(error.extensions or {}), "code": "GRAPHQL_VALIDATION_FAILED"})


class DomainErrorCodes(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is not None and result.errors:
            result.errors = [describe(e) for e in result.errors]


class MutationTransaction(SchemaExtension):
    """A mutation operation is one transaction, its response selection included: if any part fails,
    nothing it wrote stays."""

    async def on_execute(self) -> AsyncIterator[None]:  # type: ignore[override]
        execution = self.execution_context
        if execution.operation_type is not OperationType.MUTATION:
            yield
            return
        uow = execution.context.uow
        if uow.read_only:  # each write refuses itself (PermissionDenied); there is nothing to wrap
            yield
            return
        try:
            async with uow.transaction():
                yield
                if execution.result is not None and execution.result.errors:
                    uow.abandon()
        except DomainError as exc:
            # A constraint the database enforced at commit (a lost race), mapped like any domain error.
            execution.result = ExecutionResult(data=None, errors=[describe(GraphQLError(exc.message, original_error=exc))])
        except Exception as exc:
            log.error("a mutation failed to commit", exc_info=exc)
            execution.result = ExecutionResult(data=None, errors=[
                GraphQLError("Internal server error", original_error=exc, extensions={"code": INTERNAL})])
