"""The one gate every alert-rule query passes before a metrics store runs it.

Rules come from a ConfigMap; editing it must not become a file write or a secret read. So a
query must be exactly one SELECT (DuckDB's own parser decides: no regexes), reading only
plain tables: no table functions (read_csv, read_text, glob...), no file paths in FROM, no
other catalog, no function that reports the server's settings or environment. The same gate
guards GreptimeDB (the rules are shared), whose user should be read-only too (docs/alerts.md).
DuckDB's parser is used for both: rule SQL is written once for either store.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any, Final

import duckdb

from tfcore.metrics.store import QueryFailed

# Names a rule can use as a table: the metrics tables, CTE names, subquery aliases.
_TABLE_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SCHEMAS: Final = frozenset({"", "main", "public"})
# Scalar functions that reveal the process's settings, variables or files.
_FUNCTION_PREFIXES: Final = ("read_", "duckdb_", "pragma_", "parquet_", "sniff_", "glob")
_FUNCTIONS: Final = frozenset({"getvariable", "file_exists", "current_setting", "getenv", "which_secret"})

# A private parser: an in-memory database that can reach nothing, used by one thread at a time.
_parser = duckdb.connect(":memory:", config={"enable_external_access": False, "lock_configuration": True})
_parser_lock = threading.Lock()


def single_select(sql: str) -> str:
    """`sql` without a trailing semicolon, or QueryFailed naming what is not allowed."""
    text = sql.strip().rstrip(";").strip()
    if not text:
        raise QueryFailed("the query is empty; expected one SELECT over the tf_* tables")
    with _parser_lock:
        try:
            statements = _parser.extract_statements(text)
        except duckdb.Error as exc:
            raise QueryFailed(f"the query does not parse: {_first_line(exc)}") from None
        if len(statements) != 1:
            raise QueryFailed(f"{len(statements)} statements; expected exactly one SELECT")
        kind = statements[0].type
        if kind != duckdb.StatementType.SELECT:
            raise QueryFailed(f"a {kind.name} statement; expected exactly one SELECT")
        (tree,) = _parser.execute("SELECT json_serialize_sql(?::VARCHAR)", [text]).fetchone() or ("{}",)
    parsed = json.loads(tree)
    if parsed.get("error"):
        raise QueryFailed(f"the query is not a plain SELECT: {parsed.get('error_message', 'unknown')}")
    problem = _first_forbidden(parsed)
    if problem:
        raise QueryFailed(f"{problem}; a rule may only read the metrics tables")
    return text


def _first_forbidden(tree: Any) -> str | None:
    """Walks the parse tree without recursion (a deeply nested query cannot overflow it)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        kind = node.get("type")
        if kind == "TABLE_FUNCTION":
            function = node.get("function") or {}
            return f"table function {function.get('function_name', '?')}() is not allowed"
        if kind == "BASE_TABLE":
            name, schema, catalog = node.get("table_name", ""), node.get("schema_name", ""), node.get("catalog_name")
            if catalog or schema not in _SCHEMAS or not _TABLE_NAME.match(name):
                return f"table {'.'.join(p for p in (catalog, schema, name) if p)!r} is not allowed"
        if node.get("class") == "FUNCTION":
            name = str(node.get("function_name", "")).lower()
            if name in _FUNCTIONS or name.startswith(_FUNCTION_PREFIXES):
                return f"function {name}() is not allowed"
        stack.extend(value for value in node.values() if isinstance(value, dict | list))
    return None


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
