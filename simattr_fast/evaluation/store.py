"""The results store: every trained model is one row of a SQLite database in WAL mode.

    outcomes(test_id, method, metric, m, seed, correct, margin, wall_s, created)
    primary key (test_id, method, metric, m, seed)
    supports(test_id, method, metric, support, k)      the answer of each finished search
    info(key, value)                                   the run's settings

``metric`` is ``removal``, ``mislabel``, ``flipclass`` (the ensemble that picks the flip class)
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
    test_id INTEGER NOT NULL, method TEXT NOT NULL, metric TEXT NOT NULL, m INTEGER NOT NULL,
    seed INTEGER NOT NULL, correct INTEGER NOT NULL, margin REAL NOT NULL, wall_s REAL NOT NULL,
    created REAL NOT NULL, PRIMARY KEY (test_id, method, metric, m, seed));
CREATE TABLE IF NOT EXISTS supports (
    test_id INTEGER NOT NULL, method TEXT NOT NULL, metric TEXT NOT NULL, support INTEGER NOT NULL,
    k INTEGER NOT NULL, PRIMARY KEY (test_id, method, metric));
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class ResultsStore:
    """One SQLite file shared by all workers (each opens its own connection)."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        self._con = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process kills
        self._con.executescript(_SCHEMA)

    def close(self):
        self._con.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def add(self, test_id, method, metric, m, seed, correct, margin, wall_s) -> None:
        self.add_many([(test_id, method, metric, m, seed, correct, margin, wall_s)])

    def add_many(self, rows) -> None:
        """Rows ``(test_id, method, metric, m, seed, correct, margin, wall_s)`` in one
        transaction: one model evaluated on many test images is one commit, not thousands."""
        now = time.time()
        self._con.execute("BEGIN")
        try:
            self._con.executemany(
                "INSERT OR IGNORE INTO outcomes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (int(t), meth, metric, int(m), int(s), int(bool(c)), float(g), float(w), now)
                    for t, meth, metric, m, s, c, g, w in rows
                ],
            )
        except BaseException:
            self._con.execute("ROLLBACK")
            raise
        self._con.execute("COMMIT")

    def get(self, test_id, method, metric, m) -> dict:
        """{seed: (correct, margin)} of the models already evaluated for this step."""
        rows = self._con.execute(
            "SELECT seed, correct, margin FROM outcomes WHERE test_id=? AND method=? AND metric=? AND m=?",
            (int(test_id), method, metric, int(m)),
        ).fetchall()
        return {s: (bool(c), g) for s, c, g in rows}

    def rows(self, metric: str | None = None, method: str | None = None) -> list[tuple]:
        q, args = "SELECT test_id, method, metric, m, seed, correct, margin, wall_s FROM outcomes WHERE 1=1", []
        for col, v in (("metric", metric), ("method", method)):
            if v is not None:
                q += f" AND {col}=?"
                args.append(v)
        return self._con.execute(q + " ORDER BY test_id, method, metric, m, seed", args).fetchall()

    def add_support(self, test_id, method, metric, support, k) -> None:
        """The finished search's answer (-1: censored at k)."""
        self._con.execute(
            "INSERT OR REPLACE INTO supports VALUES (?, ?, ?, ?, ?)",
            (int(test_id), method, metric, int(support), int(k)),
        )

    def supports(self, metric: str) -> dict:
        """{method: {test_id: support}} of the finished searches."""
        out: dict = {}
        for t, meth, s in self._con.execute(
            "SELECT test_id, method, support FROM supports WHERE metric=? ORDER BY method, test_id", (metric,)
        ):
            out.setdefault(meth, {})[t] = s
        return out

    def max_k(self, metric: str) -> int:
        """The largest search range k used by the finished searches of ``metric``."""
        return self._con.execute("SELECT COALESCE(MAX(k), 0) FROM supports WHERE metric=?", (metric,)).fetchone()[0]

    def count(self) -> int:
        return self._con.execute("SELECT COUNT(*) FROM outcomes").fetchone()[0]

    def set_info(self, key: str, value: str) -> None:
        """Records a run setting; a different value for an existing key is an error (mixing
        the outcomes of two settings in one store would corrupt every summary)."""
        old = self.info(key)
        if old is not None and old != value:
            raise ValueError(f"store: {self.path!r} was filled with {key}={old}, not {value}; use another store")
        self._con.execute("INSERT OR IGNORE INTO info VALUES (?, ?)", (key, value))

    def replace_info(self, key: str, value: str) -> None:
        """Sets a value that may grow over runs (e.g. the flip classes of more test images)."""
        self._con.execute("INSERT OR REPLACE INTO info VALUES (?, ?)", (key, value))

    def info(self, key: str):
        row = self._con.execute("SELECT value FROM info WHERE key=?", (key,)).fetchone()
        return row and row[0]
