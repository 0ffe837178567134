"""Database access: one async engine per service, sessions that only the unit of work commits."""

from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import (
    ColumnElement,
    Enum,
    String,
    Table,
    TextClause,
    any_,
    bindparam,
    event,
    func,
    inspect,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Mapped
from sqlalchemy.types import TypeDecorator, TypeEngine

from shared.metrics import DB_STATEMENTS
from shared.settings import ServiceSettings

_SIGNALS = "medassist.signals"


def signal_after_commit(session: AsyncSession, signal: str) -> None:
    """Say that this transaction wrote something a background worker acts on (outbox rows, due payments):
    the worker is woken when the transaction commits, instead of finding out by polling."""
    session.info.setdefault(_SIGNALS, set()).add(signal)


# Lock namespaces (the first key of pg_advisory_xact_lock(int, int)): one per kind of thing locked.
LOCK_SETTLEMENT_ID = 0x5E771  # intake: (hospital, hospital_settlement_id)
LOCK_PERSON = 0x9E250  # eligibility: registry entries and consents of one person_ref
_SETUP_LOCK_KEY = 0x5E7095  # ensure_database, on the maintenance database: one process at a time


LOCK_BUCKETS = 256
"""Keys hash into this many advisory locks per namespace, so a transaction holds at most this many however many
keys it writes. PostgreSQL's lock table is shared and fixed (max_locks_per_transaction x max_connections: 6,400
entries with the defaults and 100 connections): a registry import of 5,000 persons took 5,000 locks, and a few
at once ran it out ("out of shared memory"). Two keys in one bucket take turns, which costs only waiting."""


async def lock_keys(session: AsyncSession, namespace: int, keys: Iterable[str]) -> None:
    """Take transaction-scoped advisory locks on `keys` (their buckets: `LOCK_BUCKETS`), always in one order.

    For writes of rows that do not exist yet (a new settlement id, a new person), which no row lock can
    cover: concurrent requests for the same keys take turns instead of failing on a unique violation, and
    the one order means two requests with overlapping keys never deadlock. Released at commit or rollback.
    """
    distinct = sorted(set(keys))
    if not distinct:
        return
    await session.execute(_LOCK_KEYS, {"namespace": namespace, "keys": distinct, "mask": LOCK_BUCKETS - 1})


_LOCK_KEYS = text(
    "SELECT pg_advisory_xact_lock(:namespace, b) FROM "
    "(SELECT DISTINCT hashtext(k) & :mask AS b FROM unnest(CAST(:keys AS text[])) AS k ORDER BY b) AS ordered")


Column = ColumnElement[Any] | Mapped[Any]
"""A column as SQLAlchemy's Core (`table.c.x`) or sqlmodel's `col(Model.x)` gives it."""


def _element(column: Column) -> ColumnElement[Any]:
    element = column if isinstance(column, ColumnElement) else inspect(column).expression
    assert isinstance(element, ColumnElement)
    return element


def in_array(column: Column, values: Collection[Any]) -> ColumnElement[bool]:
    """`column = ANY(:values)`: one bound array, so the statement's text is the same for any number of values.

    An expanding `IN (...)` renders one placeholder per value: every batch size is a new statement to prepare
    (asyncpg caches prepared statements by their text), which costs a round trip and the server a parse and plan.
    """
    element = _element(column)
    return element == any_(bindparam(None, list(values), type_=_array_of(element.type)))


def in_bound_array(column: Column, name: str) -> ColumnElement[bool]:
    """`in_array` for a statement built once (at import): the array is bound at execution, as parameter `name`.
    Building a statement and its cache key costs more than running it (0.1-2 ms of CPU for the repositories'
    reads and claims); a statement built once has its key memoized."""
    element = _element(column)
    return element == any_(bindparam(name, type_=_array_of(element.type)))


def _array_of(sql_type: TypeEngine[Any]) -> ARRAY[Any]:
    """The type of an array bound against a column: a bounded string without its bound, since a cast to
    `varchar(n)[]` cuts a longer value short, and the cut value could match a row the full one does not."""
    return ARRAY(String() if _is_string(sql_type) else sql_type)


def _is_string(sql_type: TypeEngine[Any]) -> bool:
    stored = sql_type.impl_instance if isinstance(sql_type, TypeDecorator) else sql_type  # SQLModel's AutoString
    return isinstance(stored, String) and not isinstance(stored, Enum)


def in_arrays(columns: Sequence[Column], rows: Collection[Sequence[Any]]) -> ColumnElement[bool]:
    """`(a, b) IN (SELECT * FROM unnest(:as, :bs))`: `in_array` for composite keys (one array per column)."""
    elements = [_element(c) for c in columns]
    arrays = [bindparam(None, [row[i] for row in rows], type_=_array_of(e.type)) for i, e in enumerate(elements)]
    keys = func.unnest(*arrays).table_valued(*(f"k{i}" for i in range(len(columns)))).render_derived()
    return tuple_(*elements).in_(select(*keys.c))


def unnest_arrays(table: Table, columns: Sequence[str]) -> str:
    """`unnest` of one array parameter per column (named like it), each typed like its column, except that a
    bounded string travels as text: an explicit cast to `varchar(n)` cuts a longer value short without a word,
    where storing it in the column refuses it (`value too long`)."""
    return "unnest(" + ", ".join(f"CAST(:{c} AS {_array_element(table.c[c].type)}[])" for c in columns) + ")"


def _array_element(sql_type: TypeEngine[Any]) -> str:
    if _is_string(sql_type):
        return "TEXT"
    return sql_type.compile(dialect=postgresql.dialect())  # type: ignore[no-untyped-call]  # unannotated __init__


def insert_arrays(table: Table, columns: Sequence[str], then: str = "") -> TextClause:
    """An INSERT of every row in one execution, bound as one array per column (`as_arrays`), in the arrays' order
    (a serial id follows it); `then` is the rest of the statement (`ON CONFLICT ...`, `RETURNING ...`). An
    executemany instead runs the statement once per row on the server, and the client binds each row apart; this
    statement's text is the same for one row or thousands, so built once it is prepared once per connection (an
    `insert()` built per call also rebuilt its column collections, `excluded`, every time)."""
    name = postgresql.dialect().identifier_preparer.format_table(table)  # type: ignore[no-untyped-call]  # unannotated
    return text(f"INSERT INTO {name} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM "
                f"{unnest_arrays(table, columns)} WITH ORDINALITY AS v({', '.join(columns)}, n) ORDER BY n {then}"
                .rstrip())


def update_arrays(table: Table, key: str, columns: Sequence[str], *, where: str = "", **fixed: str) -> TextClause:
    """An UPDATE of every row of a batch in one execution: `columns` from one bound array each (named like the
    column), the rows matched on `key` (an array too); `fixed`: columns set to one SQL expression (a parameter,
    `now()`) in every row; `where`: a further guard on the row (`AND t.status = ...`; the table is `t`)."""
    name = postgresql.dialect().identifier_preparer.format_table(table)  # type: ignore[no-untyped-call]  # unannotated
    sets = ", ".join([f"{c} = v.{c}" for c in columns] + [f"{c} = {e}" for c, e in fixed.items()])
    return text(f"UPDATE {name} AS t SET {sets} FROM {unnest_arrays(table, (key, *columns))} "
                f"AS v({', '.join((key, *columns))}) WHERE t.{key} = v.{key}{where}")


def as_arrays(rows: Sequence[Mapping[str, Any]], columns: Iterable[str]) -> dict[str, list[Any]]:
    """The parameters of `insert_arrays` (or any statement over `unnest_arrays`): one list per column."""
    return {c: [row[c] for row in rows] for c in columns}


# Settings of every connection the services open (sent with the connection's start-up, no round trip of its own).
# No parallel query: the services' statements are small, many run at once on few cores, and a plan with workers
# pays for starting them on every execution. Eligibility's facts read of a 480-person batch, planned with a
# parallel seq scan of registry_period by two workers, took 112-137 ms; without workers the planner takes the
# person_ref index and the read took 24-49 ms (the same batch, the loaded 2-core machine). ADR 0038.
SESSION_SETTINGS = {"max_parallel_workers_per_gather": "0"}


class Database:
    """The service's engine and session factory."""

    def __init__(self, settings: ServiceSettings, *, owner: bool = False) -> None:
        """Queries run as the runtime role; `owner=True` is for set-up code that needs DDL (tests, tools)."""
        self.settings = settings
        self.engine: AsyncEngine = create_async_engine(
            settings.owner_database_url if owner else settings.database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_pool_size,
            # No pre-ping (a round trip and ~0.14 ms of CPU per transaction): a connection that died while pooled
            # fails its first statement as invalidated, SQLAlchemy then drops the pool's older connections, the
            # consumer retries the batch (shared.messaging.consumer.is_transient) and a request answers 503.
            pool_pre_ping=False,
            hide_parameters=True,  # errors must not carry row values into logs (they may be personal data)
            connect_args={"server_settings": SESSION_SETTINGS},
        )
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        statements = DB_STATEMENTS.labels(settings.service_name)
        event.listen(self.engine.sync_engine, "before_cursor_execute", lambda *_: statements.inc())
        self._on_commit: dict[str, list[Callable[[], None]]] = defaultdict(list)

    def on_commit(self, signal: str, callback: Callable[[], None]) -> None:
        """Call `callback` after each transaction that raised `signal` (`signal_after_commit`) has committed."""
        self._on_commit[signal].append(callback)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on any error.

        Signals raised inside it are delivered after the commit, never for a rolled-back transaction.
        """
        async with self.sessions() as session:
            async with session.begin():
                yield session
            signals = session.info.pop(_SIGNALS, set())
        for signal in signals:
            for callback in self._on_commit.get(signal, ()):
                callback()

    async def ping(self) -> None:
        """Raise when the database does not answer (readiness)."""
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def dispose(self) -> None:
        await self.engine.dispose()


async def ensure_database(settings: ServiceSettings, *, recreate: bool = False) -> None:
    """Create the service's database and its runtime role when missing (local stack and tests).

    Only the runtime role may connect besides the owner; its table privileges come with the migrations
    (shared.migrations.apply_runtime_grants). An existing role is left as it is.
    """
    database, role = quote_ident(settings.database), quote_ident(settings.app_role)
    conn = await asyncpg.connect(
        host=settings.pg_host,
        port=settings.pg_port,
        user=settings.pg_user,
        password=settings.pg_password.get_secret_value(),
        database="postgres",
    )
    try:
        # Replicas starting together would otherwise race on the catalog rows the CREATE/GRANT/REVOKE below
        # change ("tuple concurrently updated/deleted"); the session lock ends with the connection.
        await conn.execute(f"SELECT pg_advisory_lock({_SETUP_LOCK_KEY})")
        if recreate:
            await conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", settings.database):
            await conn.execute(f"CREATE DATABASE {database}")
        if settings.app_role == settings.pg_user:
            return  # one role for everything (a deliberate choice of the deployment): nothing to manage
        superuser = await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = $1", settings.app_role)
        if superuser:
            raise RuntimeError(f"the runtime role {settings.app_role} is a superuser; give it data privileges only")
        if superuser is None:
            password = await conn.fetchval("SELECT quote_literal($1)", settings.pg_app_password.get_secret_value())
            await conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD {password}")
        await conn.execute(f"REVOKE ALL ON DATABASE {database} FROM PUBLIC")
        await conn.execute(f"GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {role}")
    finally:
        await conn.close()


def quote_ident(name: str) -> str:
    """A database or role name as a quoted SQL identifier; names that need escaping are refused."""
    if not name or not all(c.isalnum() or c in "_-" for c in name) or len(name) > 63:
        raise ValueError(f"unsupported database object name: {name!r}")
    return f'"{name}"'
