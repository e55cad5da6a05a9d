"""SQL constructs SQLAlchemy does not write the way a statement here needs."""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import String, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal


class KeysArray(ColumnElement[Any]):
    """PostgreSQL's `ARRAY[$1, $2, ...]` of an expanding parameter (`keys_array`)."""

    inherit_cache = True
    type = ARRAY(String)
    _traverse_internals: ClassVar[list[Any]] = [("bind", InternalTraversal.dp_clauseelement)]

    def __init__(self, name: str) -> None:
        self.bind = bindparam(name, expanding=True, type_=String)


def keys_array(name: str) -> KeysArray:
    """A list parameter written out as a PostgreSQL array, one placeholder per key: a statement per list
    length. With a single array parameter (`$1::text[]`) PostgreSQL's generic plan cannot know how many
    keys come, assumes ten, costs more than a plan for the call's own five, and so plans every call
    anew (0.46 ms for the customer family read, four times its execution); written out, the generic
    plan counts them and serves from the sixth call on. The list must not be empty."""
    return KeysArray(name)


@compiles(KeysArray, "postgresql")
def _render_keys_array(element: KeysArray, compiler: Any, **kw: Any) -> str:
    # SQLAlchemy writes an expanding parameter as `(__[POSTCOMPILE_name])`, for IN; here without the
    # parentheses, which would make the list one row value (tests/persistence/test_sql.py pins this).
    rendered = compiler.process(element.bind, **kw)
    return f"ARRAY[{rendered[1:-1] if rendered.startswith('(') else rendered}]"


@compiles(KeysArray)
def _no_keys_array(element: KeysArray, compiler: Any, **kw: Any) -> str:
    raise CompileError("keys_array is PostgreSQL's; other dialects take the keys as an IN list")
