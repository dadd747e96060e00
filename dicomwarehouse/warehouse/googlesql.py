"""GoogleSQL (BigQuery) -> DuckDB, faithful to BigQuery's documented semantics.

The views of ``sql/`` and the queries users paste from the BigQuery console (IDC's tutorials
and derived tables) are GoogleSQL. sqlglot parses them and writes DuckDB, but its translation
of a few constructs that IDC's SQL leans on runs silently wrong or does not run at all on
DuckDB. This module is the one place where that translation is corrected: the statement is
parsed with sqlglot's BigQuery dialect, the tree is rewritten by the transforms below, and
sqlglot's DuckDB generator writes the text. What a transform does, and why:

- ``UNNEST(a) AS x WITH OFFSET AS o``: sqlglot writes ``WITH ORDINALITY``, which counts from 1
  where BigQuery's OFFSET counts from 0. The UNNEST becomes a lateral derived table that
  subtracts 1 from the ordinality, so ``o`` and ``SELECT *`` both see 0-based offsets.
- An UNNEST's range variable named like a column of another FROM item (``UNNEST(
  ContentSequence) AS contentSequence``: DuckDB, like BigQuery, compares names without case)
  is ambiguous in DuckDB. BigQuery resolves such a name to the range variable (IDC's
  measurement queries rely on it), so every UNNEST gets a table alias of its own and the
  references to its range variable are qualified with it.
- ``NUMERIC``/``DECIMAL`` without parameters is BigQuery's DECIMAL(38, 9); sqlglot writes a
  bare ``DECIMAL``, which DuckDB reads as DECIMAL(18, 3) (70.588235294118 became 70.588).
  ``BIGNUMERIC`` (76.76 digits, scale 38) has no DuckDB equal (DuckDB's widest is 38 digits):
  it becomes DECIMAL(38, 18), which holds every DICOM DS and IS value exactly (at most 16 and
  12 characters) and fails loudly, not silently, past 20 integer digits.
- ``ARRAY_AGG(... ORDER BY ... LIMIT n)``: DuckDB aggregates take no LIMIT; the aggregate is
  sliced to its first n elements instead (``LIST_SLICE(ARRAY_AGG(...), 1, n)``).
- ``SAFE_CAST(x AS INT64)``: DuckDB rounds the STRING '1.5' to 2 where BigQuery gives NULL
  (only integer literals convert), and rounds the FLOAT64 2.5 to 2 where BigQuery rounds
  halfway cases away from zero (3); the cast is guarded by the operand's type.
- ``FORMAT(fmt, ...)`` is printf-style in BigQuery but not in DuckDB: it becomes PRINTF.
- ``EXTRACT(DAYOFWEEK | WEEK | WEEK(MONDAY) | ISOWEEK ...)``: BigQuery numbers days of the
  week from 1 (Sunday) and weeks from the first Sunday (week 0 before it); DuckDB from 0 and
  by ISO week. The parts are computed as BigQuery numbers them.
- ``ROUND(x, n)`` with n not a literal: DuckDB's ROUND takes an INTEGER, not the BIGINT that an
  INT64 expression becomes, so n is cast to INTEGER.
- ``ORDER BY f(alias)`` where the alias names a subquery: DuckDB cannot bind an alias of a
  subquery inside an expression, so the alias is replaced by a copy of the subquery there.
- ``project.dataset.table`` names (``bigquery-public-data.idc_current.dicom_all``) become the
  warehouse's table of the same name, or what a table map says (:func:`parse_table_map`).
- ``DECLARE name TYPE DEFAULT constant`` (IDC's scripts set tolerances so) is inlined: later
  statements read ``CAST(constant AS TYPE)`` where they name the variable. Other scripting (SET,
  DECLARE without a constant default, BEGIN ... END, IF, LOOP, CALL, EXECUTE IMMEDIATE) and
  CREATE FUNCTION/PROCEDURE have no DuckDB translation: they fail with one line naming the
  construct (:class:`GoogleSQLError`), as do parse errors (with line and column).
- Comments are dropped: DuckDB would keep them in a view's SQL text.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, TokenError, UnsupportedError

from dicomwarehouse.errors import UsageError

__all__ = [
    "BIGNUMERIC_TYPE",
    "NUMERIC_TYPE",
    "GoogleSQLError",
    "parse_table_map",
    "translate",
]

#: BigQuery NUMERIC (and DECIMAL) as DuckDB declares it: the same precision and scale.
NUMERIC_TYPE = "DECIMAL(38, 9)"
#: BigQuery BIGNUMERIC as DuckDB declares it: DuckDB's widest decimal (see the module text).
BIGNUMERIC_TYPE = "DECIMAL(38, 18)"

#: DuckDB schemas that a two-part name may address on purpose; other prefixes are BigQuery's.
_DUCKDB_SCHEMAS = frozenset({"main", "information_schema", "pg_catalog", "temp"})

_SCRIPTING = (exp.Set, exp.Command)

#: How sqlglot's parse errors show a token; the one-line message shows its text only.
_TOKEN = re.compile(r"<Token token_type: [^,]*, text: (?P<text>.*?), line: \d+.*?>")


class GoogleSQLError(UsageError):
    """GoogleSQL that cannot be translated: a parse error, or a construct DuckDB lacks.

    The message is one line, so that the command prints it as it is.
    """


def parse_table_map(entries: Iterable[str]) -> dict[str, str]:
    """``OLD=NEW`` entries (``my-project.idc_v19.segmentations=segmentations``) as a mapping.

    ``OLD`` is a table name as the query writes it, with any project and dataset; ``NEW`` is
    the warehouse's table or view. Raises GoogleSQLError for an entry without ``=``.
    """
    table_map: dict[str, str] = {}
    for entry in entries:
        old, sep, new = entry.partition("=")
        old, new = old.strip().strip("`"), new.strip().strip("`")
        if not sep or not old or not new:
            raise GoogleSQLError(f"table map entry {entry!r} is not OLD=NEW")
        table_map[old] = new
    return table_map


@contextmanager
def _quiet_sqlglot() -> Iterator[None]:
    """sqlglot logs a warning for each statement it keeps as a raw Command (scripting); the
    one-line error below says it better."""
    sqlglot_logger = logging.getLogger("sqlglot")
    level = sqlglot_logger.level
    sqlglot_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        sqlglot_logger.setLevel(level)


def _parse(sql: str) -> list[exp.Expression]:
    with _quiet_sqlglot():
        try:
            statements = sqlglot.parse(sql, read="bigquery")
        except ParseError as error:
            first = error.errors[0] if error.errors else {}
            description = _TOKEN.sub(
                lambda match: repr(match["text"]), str(first.get("description", error))
            ).splitlines()[0]
            where = ""
            if first.get("line") is not None:
                where = f" at line {first['line']}, column {first['col']}"
            near = f" (near {first['highlight']!r})" if first.get("highlight") else ""
            raise GoogleSQLError(f"GoogleSQL parse error{where}: {description}{near}") from None
        except TokenError as error:
            message = str(error).splitlines()[0] if str(error) else "unreadable text"
            raise GoogleSQLError(f"GoogleSQL parse error: {message}") from None
    return [statement for statement in statements if statement is not None]


def _check_supported(statement: exp.Expression) -> None:
    """One-line refusal of what has no DuckDB translation, naming the construct."""
    if isinstance(statement, _SCRIPTING):
        words = statement.sql(dialect="bigquery").split()
        head = " ".join(words[:2]) if words[:1] == ["EXECUTE"] else (words[0] if words else "")
        raise GoogleSQLError(
            f"BigQuery scripting ({head.upper()}) is not translated to DuckDB: "
            "run the query part alone, with values in place of variables"
        )
    if isinstance(statement, exp.Create) and str(statement.args.get("kind")).upper() in (
        "FUNCTION",
        "PROCEDURE",
        "TABLE FUNCTION",
    ):
        language = statement.find(exp.LanguageProperty)
        js = language is not None and language.name.lower() == "js"
        raise GoogleSQLError(
            f"CREATE {statement.args['kind']}"
            + (" ... LANGUAGE js" if js else "")
            + " is not translated to DuckDB: inline the function's body in the query"
        )


def _declared(statement: exp.Declare) -> dict[str, exp.Expression]:
    """The variables of ``DECLARE a, b TYPE DEFAULT constant``, each as ``CAST(constant AS
    TYPE)``; a DECLARE without a constant default is refused (one line)."""
    variables: dict[str, exp.Expression] = {}
    for item in statement.expressions:
        default = item.args.get("default")
        names = item.this if isinstance(item.this, list) else [item.this]
        if not isinstance(default, exp.Expression) or default.find(exp.Column, exp.Query):
            raise GoogleSQLError(
                f"BigQuery scripting (DECLARE {', '.join(n.name for n in names)} without a "
                "constant DEFAULT) is not translated to DuckDB: put the value in the query"
            )
        kind = item.args.get("kind")
        value = exp.cast(default.copy(), kind.copy()) if kind is not None else default.copy()
        for name in names:
            variables[name.name.lower()] = value
    return variables


def _inline_variables(tree: exp.Expression, variables: Mapping[str, exp.Expression]) -> None:
    """Replace each bare name of a declared variable with its value (see the module text)."""
    if not variables:
        return
    for column in list(tree.find_all(exp.Column)):
        if len(column.parts) == 1 and column.name.lower() in variables:
            column.replace(exp.Paren(this=variables[column.name.lower()].copy()))


# --- table names ----------------------------------------------------------------------------


def _map_tables(tree: exp.Expression, table_map: Mapping[str, str]) -> None:
    """BigQuery table paths -> the warehouse's tables (see the module text).

    A name that the map lists (with its project and dataset, with its dataset, or bare) becomes
    the map's value; any other ``project.dataset.`` or ``dataset.`` prefix is dropped, because
    the warehouse has the tables of one dataset under their own names. CTE references and
    DuckDB's own schemas are left alone.
    """
    lowered = {key.lower(): value for key, value in table_map.items()}
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    for table in list(tree.find_all(exp.Table)):
        if not isinstance(table.this, exp.Identifier):
            continue  # a table function
        parts = [part.name for part in table.parts]
        if len(parts) == 1 and parts[0].lower() in ctes:
            continue
        target = None
        for start in range(len(parts)):
            target = lowered.get(".".join(parts[start:]).lower())
            if target is not None:
                break
        if target is None:
            if len(parts) == 1 or (len(parts) == 2 and parts[0].lower() in _DUCKDB_SCHEMAS):
                continue
            target = parts[-1]
        replacement = exp.to_table(target, dialect="duckdb")
        for key in ("catalog", "db", "this"):
            table.set(key, replacement.args.get(key))


# --- types ----------------------------------------------------------------------------------


def _numeric_types(tree: exp.Expression) -> None:
    """NUMERIC/DECIMAL -> DECIMAL(38, 9); BIGNUMERIC/BIGDECIMAL -> DECIMAL(38, 18)."""
    for data_type in list(tree.find_all(exp.DataType)):
        if data_type.expressions:
            continue  # NUMERIC(P, S): sqlglot keeps the parameters (capped at 38 digits)
        if data_type.this == exp.DataType.Type.DECIMAL:
            data_type.replace(exp.DataType.build(NUMERIC_TYPE, dialect="duckdb"))
        elif data_type.this == exp.DataType.Type.BIGDECIMAL:
            data_type.replace(exp.DataType.build(BIGNUMERIC_TYPE, dialect="duckdb"))


# --- aggregates and functions ---------------------------------------------------------------


def _aggregate_limits(tree: exp.Expression) -> None:
    """``ARRAY_AGG(... LIMIT n)`` -> ``LIST_SLICE(ARRAY_AGG(...), 1, n)``.

    BigQuery applies LIMIT after ORDER BY (and after IGNORE NULLS drops NULLs), which is what
    slicing the whole ordered aggregate gives. STRING_AGG with LIMIT is refused (one line).
    """
    for aggregate in list(tree.find_all(exp.ArrayAgg, exp.GroupConcat)):
        limit = aggregate.this
        if not isinstance(limit, exp.Limit):
            continue
        if isinstance(aggregate, exp.GroupConcat):
            raise GoogleSQLError(
                "STRING_AGG(... LIMIT n) is not translated to DuckDB: use "
                "ARRAY_TO_STRING(ARRAY_AGG(... LIMIT n), separator)"
            )
        aggregate.set("this", limit.this)
        outer: exp.Expression = aggregate
        while isinstance(outer.parent, exp.IgnoreNulls | exp.RespectNulls | exp.Window):
            outer = outer.parent
        placeholder = exp.Null()
        outer.replace(placeholder)
        placeholder.replace(
            exp.Anonymous(
                this="LIST_SLICE",
                expressions=[outer, exp.Literal.number(1), limit.expression],
            )
        )


_INTEGER_TYPES = {
    exp.DataType.Type.BIGINT,
    exp.DataType.Type.INT,
    exp.DataType.Type.SMALLINT,
    exp.DataType.Type.TINYINT,
}
#: A STRING that BigQuery casts to INT64: an integer literal, decimal or hexadecimal.
_INT64_TEXT = r"\s*[+-]?([0-9]+|0[xX][0-9a-fA-F]+)\s*"


def _integer_casts(tree: exp.Expression) -> None:
    """CAST and SAFE_CAST to INT64 convert as BigQuery documents (Conversion rules).

    - A STRING converts only when it is an integer literal (decimal or 0x hexadecimal): DuckDB
      rounds '1.5' to 2 and reads '1e3' as 1000, where BigQuery's SAFE_CAST gives NULL and
      CAST fails.
    - A FLOAT64 rounds halfway cases away from zero (2.5 -> 3, -0.5 -> -1); DuckDB's cast
      rounds them to even (2.5 -> 2), so the value goes through ROUND, which rounds away.
    The operand's type is not known from the text, so the cases ask DuckDB (``typeof``). Every
    integer type is INT64 in BigQuery, so the target is BIGINT.
    """
    for node in list(tree.find_all(exp.Cast, exp.TryCast)):
        if node.to.this not in _INTEGER_TYPES:
            continue
        operand = node.this
        node.set("to", exp.DataType.build("BIGINT"))
        if isinstance(operand, exp.Literal) and not operand.is_string:
            continue
        safe = isinstance(node, exp.TryCast) or bool(node.args.get("safe"))

        def convert(value: exp.Expression, safe: bool = safe) -> exp.Expression:
            kind = exp.TryCast if safe else exp.Cast
            return kind(this=value, to=exp.DataType.build("BIGINT"))

        def typeof_in(*names: str, operand: exp.Expression = operand) -> exp.Expression:
            return exp.In(
                this=exp.Anonymous(this="TYPEOF", expressions=[operand.copy()]),
                expressions=[exp.Literal.string(name) for name in names],
            )

        as_text = exp.cast(operand.copy(), exp.DataType.build("TEXT"))
        integer_text = exp.Anonymous(
            this="REGEXP_FULL_MATCH", expressions=[as_text, exp.Literal.string(_INT64_TEXT)]
        )
        bad_text: exp.Expression = exp.Null()
        if not safe:
            bad_text = exp.Anonymous(
                this="ERROR",
                expressions=[
                    exp.DPipe(
                        this=exp.Literal.string("Bad int64 value: "), expression=as_text.copy()
                    )
                ],
            )
        rounded = exp.Round(this=exp.TryCast(this=operand.copy(), to=exp.DataType.build("DOUBLE")))
        node.replace(
            exp.Case(
                ifs=[
                    exp.If(
                        this=typeof_in("VARCHAR"),
                        true=exp.Case(
                            ifs=[exp.If(this=integer_text, true=convert(operand.copy()))],
                            default=bad_text,
                        ),
                    ),
                    exp.If(this=typeof_in("DOUBLE", "FLOAT"), true=convert(rounded)),
                ],
                default=convert(operand.copy()),
            )
        )


#: BigQuery's WEEK(<weekday>) parts that strftime numbers the same way (week 0 holds the
#: days before the year's first such weekday).
_WEEK_FORMATS = {"SUNDAY": "%U", "MONDAY": "%W"}


def _date_parts(tree: exp.Expression) -> None:
    """EXTRACT parts that BigQuery numbers differently from DuckDB (Date functions, EXTRACT).

    - DAYOFWEEK is 1 (Sunday) to 7 in BigQuery, 0 to 6 in DuckDB.
    - WEEK is the week of the year starting on Sunday (WEEK(MONDAY): on Monday), with the days
      before the first such day in week 0; DuckDB's WEEK is the ISO week. strftime's %U and
      %W count so; WEEK on other weekdays is refused (one line).
    - ISOWEEK is DuckDB's WEEK.
    """
    for node in list(tree.find_all(exp.Extract)):
        part = node.this
        value = node.expression.copy()
        if isinstance(part, exp.WeekStart):
            day = part.this.name.upper()
        elif isinstance(part, exp.Var) and part.name.upper() == "WEEK":
            day = "SUNDAY"
        elif isinstance(part, exp.Var) and part.name.upper() == "DAYOFWEEK":
            node.replace(
                exp.Paren(
                    this=exp.Add(
                        this=exp.Anonymous(this="DAYOFWEEK", expressions=[value]),
                        expression=exp.Literal.number(1),
                    )
                )
            )
            continue
        elif isinstance(part, exp.Var) and part.name.upper() == "ISOWEEK":
            node.replace(exp.Anonymous(this="WEEK", expressions=[value]))
            continue
        else:
            continue
        if day not in _WEEK_FORMATS:
            raise GoogleSQLError(f"EXTRACT(WEEK({day}) ...) is not translated to DuckDB")
        node.replace(
            exp.cast(
                exp.Anonymous(
                    this="STRFTIME", expressions=[value, exp.Literal.string(_WEEK_FORMATS[day])]
                ),
                exp.DataType.build("BIGINT"),
            )
        )


_SPECIFIER = re.compile(r"%[-+ #0']*(\*|\d+)?(\.\d+)?([a-zA-Z%])")


def _format_printf(tree: exp.Expression) -> None:
    """``FORMAT(fmt, ...)`` -> ``PRINTF(fmt, ...)``.

    BigQuery's FORMAT is printf-style (%d, %s, %f, %x, ...); sqlglot keeps the name, and
    DuckDB's FORMAT is the fmt library's ``{}`` style, which returns '%d-%s' unchanged (silently
    wrong). DuckDB's PRINTF takes the same specifiers, except BigQuery's %t and %T (any value as
    text): those become %s of the value cast to VARCHAR (%T's quoting of strings is not kept).
    """
    for node in list(tree.find_all(exp.Format)):
        template = node.this
        arguments = [argument.copy() for argument in node.expressions]
        if isinstance(template, exp.Literal) and template.is_string:
            text = template.this
            position = 0
            pieces: list[str] = []
            last = 0
            for match in _SPECIFIER.finditer(text):
                conversion = match.group(3)
                if conversion == "%":
                    continue
                pieces.append(text[last : match.start()])
                spec = match.group(0)
                if conversion in "tT" and position < len(arguments):
                    spec = spec[:-1] + "s"
                    arguments[position] = exp.cast(arguments[position], exp.DataType.build("TEXT"))
                pieces.append(spec)
                last = match.end()
                position += 1 + (match.group(1) == "*")
            pieces.append(text[last:])
            template = exp.Literal.string("".join(pieces))
        node.replace(exp.Anonymous(this="PRINTF", expressions=[template.copy(), *arguments]))


def _round_precision(tree: exp.Expression) -> None:
    """``ROUND(x, n)``: n cast to INTEGER unless it is a literal (DuckDB's ROUND wants one)."""
    for node in list(tree.find_all(exp.Round)):
        decimals = node.args.get("decimals")
        if decimals is None or isinstance(decimals, exp.Literal):
            continue
        node.set("decimals", exp.cast(decimals.copy(), exp.DataType.build("INT")))


# --- ORDER BY aliases of subqueries ---------------------------------------------------------


def _outside_subqueries(node: exp.Expression) -> Iterator[exp.Expression]:
    """The nodes of an expression that are not inside a nested query."""
    yield from node.walk(prune=lambda n: n is not node and isinstance(n, exp.Query))


def _order_by_subquery_aliases(tree: exp.Expression) -> None:
    """Inside an ORDER BY expression, an alias of a subquery becomes the subquery itself.

    ``ORDER BY alias`` alone binds in DuckDB; ``ORDER BY ARRAY_LENGTH(alias)`` does not when the
    alias holds a subquery. BigQuery resolves ORDER BY names to the SELECT list first, so the
    copy computes the same value.
    """
    for select in list(tree.find_all(exp.Select)):
        order = select.args.get("order")
        if order is None:
            continue
        aliased = {
            projection.alias.lower(): projection.this
            for projection in select.expressions
            if isinstance(projection, exp.Alias) and projection.this.find(exp.Query)
        }
        if not aliased:
            continue
        for ordered in order.expressions:
            if isinstance(ordered.this, exp.Column):
                continue  # the alias alone: DuckDB binds it
            for column in list(_outside_subqueries(ordered.this)):
                if (
                    isinstance(column, exp.Column)
                    and not column.table
                    and column.name.lower() in aliased
                ):
                    column.replace(exp.Paren(this=aliased[column.name.lower()].copy()))


# --- UNNEST ---------------------------------------------------------------------------------


class _Names:
    """Fresh table aliases for UNNESTs, unlike any name the statement uses."""

    def __init__(self, tree: exp.Expression) -> None:
        self._used = {identifier.name.lower() for identifier in tree.find_all(exp.Identifier)}
        self._counter = itertools.count()

    def fresh(self, stem: str) -> str:
        while True:
            name = f"_{stem}{next(self._counter)}"
            if name not in self._used:
                self._used.add(name)
                return name


def _qualify(column: exp.Column, alias: str) -> exp.Expression:
    """``x.a.b`` -> ``alias.x.a.b`` (a Column holds four parts; deeper ones become Dots)."""
    parts = [exp.to_identifier(alias), *(part.copy() for part in column.parts)]
    if len(parts) <= 4:
        return exp.Column(
            this=parts[-1],
            table=parts[-2],
            db=parts[-3] if len(parts) >= 3 else None,
            catalog=parts[-4] if len(parts) >= 4 else None,
        )
    head = exp.Column(this=parts[3], table=parts[2], db=parts[1], catalog=parts[0])
    return exp.Dot.build([head, *parts[4:]])


def _offset_table(unnest: exp.Unnest, value: str, offset: str, names: _Names) -> exp.Subquery:
    """``UNNEST(a) AS value WITH OFFSET AS offset`` as a derived table with 0-based offsets."""
    inner = names.fresh("o")
    body = exp.Select(
        expressions=[
            exp.column(value, inner, quoted=True),
            exp.alias_(
                exp.Sub(
                    this=exp.column(offset, inner, quoted=True), expression=exp.Literal.number(1)
                ),
                exp.to_identifier(offset, quoted=True),
            ),
        ]
    ).from_(
        exp.Unnest(
            expressions=[e.copy() for e in unnest.expressions],
            offset=exp.to_identifier(offset, quoted=True),
            alias=exp.TableAlias(
                this=exp.to_identifier(inner), columns=[exp.to_identifier(value, quoted=True)]
            ),
        )
    )
    return exp.Subquery(this=body)


def _unnest_item(
    item: exp.Expression, names: _Names
) -> tuple[exp.Expression, dict[str, str]] | None:
    """The DuckDB form of one FROM item that is an UNNEST, and the range names it defines."""
    if not isinstance(item, exp.Unnest) or len(item.expressions) != 1:
        return None
    alias = item.args.get("alias")
    columns = list(alias.columns) if alias is not None else []
    value = columns[0].name if columns else None
    offset = item.args.get("offset")
    table = names.fresh("u")
    defined: dict[str, str] = {}
    if value:
        defined[value.lower()] = table
    if offset:
        offset_name = offset.name if isinstance(offset, exp.Identifier) else "offset"
        defined[offset_name.lower()] = table
        derived = _offset_table(item, value or names.fresh("value"), offset_name, names)
        derived.set("alias", exp.TableAlias(this=exp.to_identifier(table)))
        return derived, defined
    if value:
        item.set(
            "alias",
            exp.TableAlias(this=exp.to_identifier(table), columns=[exp.to_identifier(value)]),
        )
    return item, defined


def _resolve_columns(node: exp.Expression, visible: Mapping[str, str], names: _Names) -> None:
    """Qualify the references to UNNEST range variables in ``node`` (nested queries too)."""
    for child in list(_outside_subqueries(node)):
        if child is not node and isinstance(child, exp.Query):
            _rewrite_query(child, visible, names)
        elif isinstance(child, exp.Column) and not isinstance(child.this, exp.Star):
            head = child.parts[0].name.lower() if child.parts else ""
            bare = len(child.parts) == 1 and isinstance(child.parent, exp.Ordered | exp.Order)
            if bare and head in getattr(visible, "aliases", ()):
                continue
            if head in visible:
                child.replace(_qualify(child, visible[head]))


def _rewrite_query(query: exp.Expression, visible: Mapping[str, str], names: _Names) -> None:
    """Give the UNNESTs of a query and of its nested queries their DuckDB form (see the module
    text); ``visible`` maps the range variables of enclosing queries to their table aliases."""
    with_ = query.args.get("with_") or query.args.get("with")
    if with_ is not None:
        for cte in with_.expressions:
            _rewrite_query(cte.this, visible, names)
    if isinstance(query, exp.SetOperation):
        _rewrite_query(query.this, visible, names)
        _rewrite_query(query.expression, visible, names)
        return
    if isinstance(query, exp.Subquery):
        _rewrite_query(query.this, visible, names)
        return
    if not isinstance(query, exp.Select):
        _resolve_columns(query, visible, names)
        return
    local = dict(visible)
    from_ = query.args.get("from_") or query.args.get("from")
    joins = list(query.args.get("joins") or [])
    holders: list[exp.Expression] = ([from_] if from_ is not None else []) + joins
    for holder in holders:
        item = holder.this
        # the item's own expressions see only the FROM items before it
        if isinstance(item, exp.Unnest):
            for expression in item.expressions:
                _resolve_columns(expression, local, names)
        elif isinstance(item, exp.Query | exp.Subquery):
            _rewrite_query(item, local, names)
        rewritten = _unnest_item(item, names)
        if rewritten is not None:
            new_item, defined = rewritten
            if new_item is not item:
                item.replace(new_item)
            local.update(defined)
            if isinstance(holder, exp.Join) and holder.side and not holder.args.get("on"):
                holder.set("on", exp.true())
        elif item.alias_or_name:
            local.pop(item.alias_or_name.lower(), None)  # a table alias shadows the name
    for key, value in query.args.items():
        if key in ("from_", "from", "with_", "with"):
            continue
        for child in value if isinstance(value, list) else [value]:
            if not isinstance(child, exp.Expression):
                continue
            if isinstance(child, exp.Join):
                on = child.args.get("on")
                if on is not None:
                    _resolve_columns(on, local, names)
                continue
            if key == "order":
                # ORDER BY names a SELECT-list alias before a range variable (BigQuery)
                aliases = {e.alias.lower() for e in query.expressions if isinstance(e, exp.Alias)}
                _resolve_columns(child, _Shadowed(local, aliases), names)
                continue
            _resolve_columns(child, local, names)


class _Shadowed(dict):
    """Range variables minus the names that SELECT-list aliases take in ORDER BY.

    Only a bare name is an alias (``x``); ``x.field`` still reads the range variable.
    """

    def __init__(self, visible: Mapping[str, str], aliases: set[str]) -> None:
        super().__init__(visible)
        self.aliases = aliases


# --- the translation ------------------------------------------------------------------------


def _transform(statement: exp.Expression, table_map: Mapping[str, str]) -> exp.Expression:
    for node in statement.walk():
        node.comments = None
    _map_tables(statement, table_map)
    _numeric_types(statement)
    _aggregate_limits(statement)
    _integer_casts(statement)  # before ROUND's digits get their INTEGER cast
    _round_precision(statement)
    _format_printf(statement)
    _date_parts(statement)
    _order_by_subquery_aliases(statement)
    _rewrite_query(statement, {}, _Names(statement))
    return statement


def translate(sql: str, *, table_map: Mapping[str, str] | None = None, pretty: bool = False) -> str:
    """The DuckDB text of GoogleSQL ``sql`` (one statement or several, separated by ``;``).

    ``table_map`` maps table names as the query writes them to the warehouse's (see
    :func:`parse_table_map`). Raises GoogleSQLError, with a one-line message, for a parse
    error or a construct that has no DuckDB translation.
    """
    statements = _parse(sql)
    if not statements:
        raise GoogleSQLError("no GoogleSQL statement to translate")
    texts = []
    variables: dict[str, exp.Expression] = {}
    for statement in statements:
        if isinstance(statement, exp.Declare):
            variables.update(_declared(statement))
            continue
        _check_supported(statement)
        _inline_variables(statement, variables)
        tree = _transform(statement, table_map or {})
        with _quiet_sqlglot():
            try:
                texts.append(
                    tree.sql(dialect="duckdb", pretty=pretty, unsupported_level=ErrorLevel.RAISE)
                )
            except UnsupportedError as error:
                message = str(error).splitlines()[0] if str(error) else "unsupported construct"
                raise GoogleSQLError(f"not translated to DuckDB: {message}") from None
    if not texts:
        raise GoogleSQLError("no query to translate after the DECLARE statements")
    return ";\n".join(texts)
