"""SQLite through aiosqlite, one trip to the connection's thread per statement.

SQLAlchemy's aiosqlite adapter crosses to the connection's thread three or four times for
each statement (open a cursor, execute, fetch the rows, close the cursor), and every
crossing is a thread hand-off and an event-loop wake-up: in a burst, most of the CPU the
database costs. Here a statement is executed and its rows fetched in one crossing, and a
cursor costs none to open or close (written here: no maintained driver does this, and
SQLAlchemy takes any module shaped like aiosqlite, see `dbapi`).
"""

from __future__ import annotations

import sqlite3
import types
from collections.abc import Iterable, Sequence
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_dbapi


class OneTripCursor:
    """The part of aiosqlite's cursor SQLAlchemy uses, with the rows fetched by `execute`."""

    arraysize = 1

    def __init__(self, connection: OneTripConnection) -> None:
        self._connection = connection
        self._cursor: sqlite3.Cursor | None = None
        self._rows: list[Any] = []

    async def __aenter__(self) -> OneTripCursor:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None

    @property
    def description(self) -> Any:
        return None if self._cursor is None else self._cursor.description

    @property
    def rowcount(self) -> int:
        return -1 if self._cursor is None else self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return None if self._cursor is None else self._cursor.lastrowid

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> OneTripCursor:
        self._cursor, self._rows = await self._connection._execute(self._run, sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> OneTripCursor:
        self._cursor, self._rows = await self._connection._execute(self._run_many, sql, parameters)
        return self

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        count = size or self.arraysize
        rows, self._rows = self._rows[:count], self._rows[count:]
        return rows

    async def close(self) -> None:
        """Nothing to do: every row was fetched, and sqlite3 finalizes the cursor itself."""
        self._rows = []

    def _run(self, sql: str, parameters: Sequence[Any]) -> tuple[sqlite3.Cursor, list[Any]]:
        cursor = self._connection._conn.cursor()  # in the connection's thread
        cursor.execute(sql, parameters)
        return cursor, cursor.fetchall() if cursor.description else []

    def _run_many(self, sql: str, parameters: Iterable[Sequence[Any]]) -> tuple[sqlite3.Cursor, list[Any]]:
        cursor = self._connection._conn.cursor()
        cursor.executemany(sql, parameters)
        return cursor, []


class OneTripConnection(aiosqlite.Connection):
    def cursor(self) -> OneTripCursor:  # type: ignore[override]
        return OneTripCursor(self)

    async def commit(self) -> None:
        if self._in_transaction():
            await super().commit()

    async def rollback(self) -> None:
        """The pool rolls back every connection it gets back, most of them only read from:
        no trip when no transaction is open (sqlite3 opens one only before a write)."""
        if self._in_transaction():
            await super().rollback()

    def _in_transaction(self) -> bool:
        # Read here, outside the connection's thread: sqlite3 checks only that it is open, and
        # SQLAlchemy never uses a connection for two things at once (one whose statement was
        # cancelled, and may still run, it closes instead of giving it back).
        connection = self._connection
        return connection is None or connection.in_transaction


def connect(database: str, *, iter_chunk_size: int = 64, **kwargs: Any) -> OneTripConnection:
    """`aiosqlite.connect`, giving a connection whose cursors take one trip a statement."""
    return OneTripConnection(lambda: sqlite3.connect(database, **kwargs), iter_chunk_size)


def dbapi() -> AsyncAdapt_aiosqlite_dbapi:
    """The DB-API module for `create_async_engine(..., module=dbapi())`: aiosqlite's, with
    `connect` giving one-trip connections."""
    shaped_like_aiosqlite = types.SimpleNamespace(**vars(aiosqlite))
    shaped_like_aiosqlite.connect = connect
    shaped_like_aiosqlite.Connection = OneTripConnection
    return AsyncAdapt_aiosqlite_dbapi(shaped_like_aiosqlite, sqlite3)  # type: ignore[arg-type]
