"""The results store: every trained model is one row of a SQLite database in WAL mode.

    outcomes(test_id, method, criterion, m, seed, correct, margin, wall_s, created)
    primary key (test_id, method, criterion, m, seed)
    supports(test_id, method, criterion, support, k)      the answer of each finished search
    info(key, value)                                   the run's settings

``criterion`` is ``removal``, ``mislabel``, ``flipclass`` (the ensemble that picks the flip class)
or ``lds``; ``m`` is the number of top-ranked images removed/relabelled (the subset number for
LDS). A row is written (and committed) the moment its model has been evaluated, so a run
killed at any point loses at most the model in training; WAL mode and a busy timeout let
several worker processes write to one store. Rows are never overwritten (``INSERT OR IGNORE``):
a model that is already there is never trained again.
"""

from __future__ import annotations

import os
import sqlite3
import time

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outcomes (
    test_id INTEGER NOT NULL, method TEXT NOT NULL, criterion TEXT NOT NULL, m INTEGER NOT NULL,
    seed INTEGER NOT NULL, correct INTEGER NOT NULL, margin REAL NOT NULL, wall_s REAL NOT NULL,
    created REAL NOT NULL, PRIMARY KEY (test_id, method, criterion, m, seed));
CREATE TABLE IF NOT EXISTS supports (
    test_id INTEGER NOT NULL, method TEXT NOT NULL, criterion TEXT NOT NULL, support INTEGER NOT NULL,
    k INTEGER NOT NULL, PRIMARY KEY (test_id, method, criterion));
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


CRITERIA = ("removal", "mislabel", "lds")  # what `evaluate` measures
SEARCH_CRITERIA = ("removal", "mislabel")  # the ones answered by a support search


class StoreError(ValueError):
    """The results store cannot be opened or written: not a store, damaged, read-only, or the
    disk is full. The message is one line naming the file."""


def _reason(exc: sqlite3.Error) -> str:
    msg = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and "full" in msg:
        return "disk full; the rows committed so far are intact"
    return msg


class ResultsStore:
    """One SQLite file shared by all workers (each opens its own connection)."""

    def __init__(self, path: str, readonly: bool = False):
        """Opens (or, unless ``readonly``, creates) the store at ``path``.

        A file that is not a results store (or one of an older schema) is refused with
        :class:`StoreError` rather than having tables added to it; ``readonly`` opens it with
        SQLite's read-only mode, for readers such as ``simattr compare``.
        """
        # ":memory:" is SQLite's private in-memory database (for tests), not a file name.
        self.path = path if path == ":memory:" else os.path.abspath(path)
        try:
            if readonly:
                if not os.path.isfile(self.path):
                    raise StoreError(f"store: no results store at {path!r}")
                self._con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=60.0, isolation_level=None)
                self._check_schema(must_exist=True)
                return
            if self.path != ":memory:":
                os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            self._con = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            self._check_schema(must_exist=False)
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process kills
            self._con.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"store: {path!r} is not a readable results store ({_reason(exc)})") from None

    def _check_schema(self, must_exist: bool) -> None:
        """Refuses a database holding other tables, or outcomes of another schema."""
        tables = {r[0] for r in self._con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables and not must_exist:
            return  # a new, empty file
        if not {"outcomes", "supports", "info"} <= tables:
            raise StoreError(
                f"store: {self.path!r} is not a simattr results store (tables: {', '.join(sorted(tables)) or 'none'})"
            )
        cols = {r[1] for r in self._con.execute("PRAGMA table_info(outcomes)")}
        if "criterion" not in cols:
            raise StoreError(
                f"store: {self.path!r} was written by an older simattr_fast (no 'criterion' column); start a new store"
            )

    def close(self):
        self._con.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def add_many(self, rows) -> None:
        """Rows ``(test_id, method, criterion, m, seed, correct, margin, wall_s)`` in one
        transaction: one model evaluated on many test images is one commit, not thousands."""
        now = time.time()
        values = [
            (int(t), meth, criterion, int(m), int(s), int(bool(c)), float(g), float(w), now)
            for t, meth, criterion, m, s, c, g, w in rows
        ]
        self._write(
            lambda: self._con.executemany("INSERT OR IGNORE INTO outcomes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
        )

    def _write(self, do) -> None:
        """Runs ``do`` in one transaction. A full disk (or any other SQLite failure) rolls back
        what it can and is reported for what it is, not as a failed rollback."""
        try:
            self._con.execute("BEGIN IMMEDIATE")
            do()
            self._con.execute("COMMIT")
        except BaseException as exc:
            if self._con.in_transaction:
                try:
                    self._con.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # SQLite may already have rolled back (e.g. on SQLITE_FULL)
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"store: cannot write to {self.path!r}: {_reason(exc)}") from None
            raise

    def get(self, test_id, method, criterion, m) -> dict:
        """{seed: (correct, margin)} of the models already evaluated for this step."""
        rows = self._con.execute(
            "SELECT seed, correct, margin FROM outcomes WHERE test_id=? AND method=? AND criterion=? AND m=?",
            (int(test_id), method, criterion, int(m)),
        ).fetchall()
        return {s: (bool(c), g) for s, c, g in rows}

    def rows(self, criterion: str | None = None, method: str | None = None) -> list[tuple]:
        q, args = "SELECT test_id, method, criterion, m, seed, correct, margin, wall_s FROM outcomes WHERE 1=1", []
        for col, v in (("criterion", criterion), ("method", method)):
            if v is not None:
                q += f" AND {col}=?"
                args.append(v)
        return self._con.execute(q + " ORDER BY test_id, method, criterion, m, seed", args).fetchall()

    def add_support(self, test_id, method, criterion, support, k) -> None:
        """The finished search's answer (-1: censored at k)."""
        row = (int(test_id), method, criterion, int(support), int(k))
        self._write(lambda: self._con.execute("INSERT OR REPLACE INTO supports VALUES (?, ?, ?, ?, ?)", row))

    def supports(self, criterion: str) -> dict:
        """{method: {test_id: support}} of the finished searches."""
        out: dict = {}
        for t, meth, s in self._con.execute(
            "SELECT test_id, method, support FROM supports WHERE criterion=? ORDER BY method, test_id", (criterion,)
        ):
            out.setdefault(meth, {})[t] = s
        return out

    def max_k(self, criterion: str) -> int:
        """The largest search range k used by the finished searches of ``criterion``."""
        return self._con.execute("SELECT COALESCE(MAX(k), 0) FROM supports WHERE criterion=?", (criterion,)).fetchone()[
            0
        ]

    def count(self) -> int:
        return self._con.execute("SELECT COUNT(*) FROM outcomes").fetchone()[0]

    def set_info(self, key: str, value: str) -> None:
        """Records a run setting; a different value for an existing key is an error (mixing
        the outcomes of two settings in one store would corrupt every summary)."""
        old = self.info(key)
        if old is not None and old != value:
            raise ValueError(f"store: {self.path!r} was filled with {key}={old}, not {value}; use another store")
        self._write(lambda: self._con.execute("INSERT OR IGNORE INTO info VALUES (?, ?)", (key, value)))

    def replace_info(self, key: str, value: str) -> None:
        """Sets a value that may grow over runs (e.g. the flip classes of more test images)."""
        self._write(lambda: self._con.execute("INSERT OR REPLACE INTO info VALUES (?, ?)", (key, value)))

    def info(self, key: str):
        row = self._con.execute("SELECT value FROM info WHERE key=?", (key,)).fetchone()
        return row and row[0]
