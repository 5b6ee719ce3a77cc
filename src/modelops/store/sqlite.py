"""SQLite connections that many processes can share: WAL, a long busy timeout, and one
connection per thread and process (a connection must never cross a fork or a thread).

With WAL, readers never block the writer nor see a half-applied transaction, and the
30 s busy timeout makes writers queue instead of failing with "database is locked".
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUSY_TIMEOUT_S = 30.0


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL on."""
    connection = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    _enable_wal(connection)
    connection.execute("PRAGMA synchronous = NORMAL")
    return connection


def _enable_wal(connection: sqlite3.Connection) -> None:
    """Switching to WAL needs a moment alone with the file; it is stored in the file, so
    it happens once, and a busy database is retried rather than reported."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
            if mode.lower() != "wal":
                connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Connections:
    """One connection per (process, thread), opened on first use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[tuple[int, sqlite3.Connection]] = []

    def get(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None or self._local.pid != os.getpid():
            connection = connect(self.path)
            self._local.connection, self._local.pid = connection, os.getpid()
            with self._lock:
                self._all.append((os.getpid(), connection))
        return connection

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the write lock up front (BEGIN IMMEDIATE), so it
        waits its turn instead of failing when it would upgrade a read lock."""
        connection = self.get()
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            connections, self._all = self._all, []
        for pid, connection in connections:
            if pid == os.getpid():  # a parent's connection inherited by fork is not ours
                connection.close()
        self._local = threading.local()
