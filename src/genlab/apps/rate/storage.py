"""Append-only response storage: SQLite (WAL) embedded by default, PostgreSQL for shared servers.

Every response is one INSERT committed (and, for SQLite, fsynced: ``synchronous=FULL``) before the
server acknowledges it. ``UNIQUE(participant_id, trial_index)`` makes a replayed or concurrent
duplicate answer fail in the database itself, and triggers refuse UPDATE and DELETE on responses.

``open_storage("path/responses.sqlite")`` or ``open_storage("postgresql://user@host/db")``
(the latter needs ``pip install "psycopg[binary]"``; several server processes may share it).
"""
from __future__ import annotations

import csv
import io
import json
import sqlite3
import queue
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable

RESPONSE_COLUMNS = ("id", "participant_id", "session_id", "trial_index", "trial_id", "base_trial", "kind",
                    "trap", "stimuli", "positions", "response", "rt_ms", "played", "client", "received")


class DuplicateResponse(Exception):
    """The participant already answered this trial."""


_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS participants (
    participant_id TEXT PRIMARY KEY,
    number INTEGER NOT NULL UNIQUE,
    seed INTEGER NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    client TEXT NOT NULL,
    plan TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    participant_id TEXT NOT NULL REFERENCES participants(participant_id),
    created REAL NOT NULL,
    client TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS responses (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    participant_id TEXT NOT NULL REFERENCES participants(participant_id),
    session_id TEXT NOT NULL REFERENCES sessions(session_id),
    trial_index INTEGER NOT NULL,
    trial_id TEXT NOT NULL,
    base_trial TEXT NOT NULL,
    kind TEXT NOT NULL,
    trap INTEGER NOT NULL,
    stimuli TEXT NOT NULL,
    positions TEXT NOT NULL,
    response TEXT NOT NULL,
    rt_ms INTEGER NOT NULL,
    played TEXT NOT NULL,
    client TEXT NOT NULL,
    received REAL NOT NULL,
    UNIQUE (participant_id, trial_index)
);
CREATE TRIGGER IF NOT EXISTS responses_no_update BEFORE UPDATE ON responses
BEGIN SELECT RAISE(ABORT, 'responses are append-only'); END;
CREATE TRIGGER IF NOT EXISTS responses_no_delete BEFORE DELETE ON responses
BEGIN SELECT RAISE(ABORT, 'responses are append-only'); END;
"""

_PG_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS participants (
        participant_id TEXT PRIMARY KEY, number BIGINT NOT NULL UNIQUE, seed BIGINT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE, created DOUBLE PRECISION NOT NULL, client TEXT NOT NULL,
        plan TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS sessions (
        session_id TEXT PRIMARY KEY, participant_id TEXT NOT NULL REFERENCES participants(participant_id),
        created DOUBLE PRECISION NOT NULL, client TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS responses (
        id BIGSERIAL PRIMARY KEY, participant_id TEXT NOT NULL REFERENCES participants(participant_id),
        session_id TEXT NOT NULL REFERENCES sessions(session_id), trial_index INTEGER NOT NULL,
        trial_id TEXT NOT NULL, base_trial TEXT NOT NULL, kind TEXT NOT NULL, trap INTEGER NOT NULL,
        stimuli TEXT NOT NULL, positions TEXT NOT NULL, response TEXT NOT NULL, rt_ms INTEGER NOT NULL,
        played TEXT NOT NULL, client TEXT NOT NULL, received DOUBLE PRECISION NOT NULL,
        UNIQUE (participant_id, trial_index))""",
    """CREATE OR REPLACE FUNCTION genlab_rate_append_only() RETURNS trigger AS $$
       BEGIN RAISE EXCEPTION 'responses are append-only'; END; $$ LANGUAGE plpgsql""",
    """DO $$ BEGIN
         IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'responses_append_only') THEN
           CREATE TRIGGER responses_append_only BEFORE UPDATE OR DELETE ON responses
           FOR EACH ROW EXECUTE FUNCTION genlab_rate_append_only();
         END IF; END $$""",
]


class Storage:
    """Common interface; subclasses provide ``_conn()``, ``_begin_exclusive()`` and placeholders."""

    ph = "?"
    integrity_errors: tuple[type[BaseException], ...] = ()

    def _q(self, sql: str) -> str:
        return sql if self.ph == "?" else sql.replace("?", self.ph)

    # -- participants and sessions
    def add_participant(self, participant_id: str, token_hash: str, seed: int, client: dict[str, Any],
                        plan_fn: Callable[[int, int], list[dict[str, Any]]]) -> tuple[int, list[dict[str, Any]]]:
        """Insert a participant with the next sequential number; ``plan_fn(number, seed)`` makes the
        plan inside the same transaction so numbering (and hence counterbalancing) has no races."""
        conn = self._conn()
        cur = conn.cursor()
        self._begin_exclusive(cur)
        try:
            cur.execute("SELECT COALESCE(MAX(number), -1) + 1 FROM participants")
            number = int(cur.fetchone()[0])
            plan = plan_fn(number, seed)
            cur.execute(self._q("INSERT INTO participants VALUES (?, ?, ?, ?, ?, ?, ?)"),
                        (participant_id, number, seed, token_hash, time.time(), json.dumps(client),
                         json.dumps(plan)))
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        return number, plan

    def add_session(self, session_id: str, participant_id: str, client: dict[str, Any]) -> None:
        self._conn().cursor().execute(self._q("INSERT INTO sessions VALUES (?, ?, ?, ?)"),
                                      (session_id, participant_id, time.time(), json.dumps(client)))

    def participant_by_token(self, token_hash: str) -> dict[str, Any] | None:
        cur = self._conn().cursor()
        cur.execute(self._q("SELECT participant_id, number, seed, plan FROM participants WHERE token_hash = ?"),
                    (token_hash,))
        row = cur.fetchone()
        if row is None:
            return None
        return {"participant_id": row[0], "number": int(row[1]), "seed": int(row[2]), "plan": json.loads(row[3])}

    def session_owner(self, session_id: str) -> str | None:
        cur = self._conn().cursor()
        cur.execute(self._q("SELECT participant_id FROM sessions WHERE session_id = ?"), (session_id,))
        row = cur.fetchone()
        return None if row is None else row[0]

    def answered(self, participant_id: str) -> set[int]:
        cur = self._conn().cursor()
        cur.execute(self._q("SELECT trial_index FROM responses WHERE participant_id = ?"), (participant_id,))
        return {int(r[0]) for r in cur.fetchall()}

    # -- responses
    @staticmethod
    def _insert(row: dict[str, Any]) -> tuple[str, list[Any]]:
        cols = RESPONSE_COLUMNS[1:]
        vals = [row[c] if not isinstance(row[c], (dict, list)) else json.dumps(row[c]) for c in cols]
        return f"INSERT INTO responses ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", vals

    def _integrity(self, e: BaseException) -> BaseException:
        if "UNIQUE" in str(e).upper() or "duplicate" in str(e).lower():
            return DuplicateResponse(str(e))
        return e

    def add_response(self, row: dict[str, Any]) -> int:
        """Insert one response (committed when this returns); raises DuplicateResponse on a replay."""
        sql, vals = self._insert(row)
        cur = self._conn().cursor()
        try:
            if self.ph == "?":
                cur.execute(sql, vals)
                return int(cur.lastrowid)
            cur.execute(self._q(sql) + " RETURNING id", vals)
            return int(cur.fetchone()[0])
        except self.integrity_errors as e:
            raise self._integrity(e) from None

    def responses(self) -> list[dict[str, Any]]:
        cur = self._conn().cursor()
        cur.execute(f"SELECT {', '.join(RESPONSE_COLUMNS)} FROM responses ORDER BY id")
        out = []
        for r in cur.fetchall():
            d = dict(zip(RESPONSE_COLUMNS, r))
            for k in ("stimuli", "positions", "response", "played", "client"):
                d[k] = json.loads(d[k])
            out.append(d)
        return out

    def participants(self) -> list[dict[str, Any]]:
        cur = self._conn().cursor()
        cur.execute("SELECT participant_id, number, seed, created, client, plan FROM participants ORDER BY number")
        return [{"participant_id": r[0], "number": int(r[1]), "seed": int(r[2]), "created": r[3],
                 "client": json.loads(r[4]), "plan": json.loads(r[5])} for r in cur.fetchall()]

    def counts(self) -> dict[str, int]:
        cur = self._conn().cursor()
        out = {}
        for t in ("participants", "sessions", "responses"):
            cur.execute(f"SELECT COUNT(*) FROM {t}")
            out[t] = int(cur.fetchone()[0])
        return out

    def close(self) -> None:
        pass


class SQLiteStorage(Storage):
    """SQLite in WAL mode, one connection per thread, every INSERT its own durable transaction."""

    ph = "?"
    integrity_errors = (sqlite3.IntegrityError,)

    def __init__(self, path: str | Path, group_commit: bool = True):
        self.path = str(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        conn = self._conn()
        conn.executescript(_SQLITE_SCHEMA)
        self.group_commit = group_commit
        self._queue: queue.Queue = queue.Queue()
        self._writer: threading.Thread | None = None

    def add_response(self, row: dict[str, Any]) -> int:
        """Group commit: concurrent answers are queued to one writer thread, which inserts a batch in
        one transaction (each INSERT still its own statement: a duplicate fails alone), commits and
        fsyncs once, and only then releases each caller with its row id (or its error). So every
        acknowledged response is on disk, and one fsync serves many participants."""
        if not self.group_commit:
            return super().add_response(row)
        fut: Future = Future()
        with self._lock:
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._write_loop, name="rate-writer", daemon=True)
                self._writer.start()
        self._queue.put((row, fut))
        return fut.result(timeout=120)

    def _write_loop(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=30000"):
            conn.execute(f"PRAGMA {pragma}")
        stop = False
        while not stop:
            item = self._queue.get()
            if item is None:
                break
            batch = [item]
            while len(batch) < 512:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            cur = conn.cursor()
            results = []
            try:
                cur.execute("BEGIN IMMEDIATE")
                for row, fut in batch:
                    sql, vals = self._insert(row)
                    try:
                        cur.execute(sql, vals)
                        results.append((fut, int(cur.lastrowid), None))
                    except sqlite3.IntegrityError as e:
                        results.append((fut, None, self._integrity(e)))
                cur.execute("COMMIT")
            except Exception as e:  # noqa: BLE001 - nothing of this batch is acknowledged
                try:
                    cur.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                for _row, fut in batch:
                    fut.set_exception(RuntimeError(f"could not store the response: {e}"))
                continue
            for fut, rid, err in results:
                if err is None:
                    fut.set_result(rid)
                else:
                    fut.set_exception(err)
        conn.close()

    def _conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("PRAGMA synchronous=FULL")
            c.execute("PRAGMA foreign_keys=ON")
            c.execute("PRAGMA busy_timeout=30000")
            self._local.conn = c
            with self._lock:
                self._all.append(c)
        return c

    def _begin_exclusive(self, cur) -> None:
        cur.execute("BEGIN IMMEDIATE")

    def close(self) -> None:
        w = self._writer
        if w is not None and w.is_alive():
            self._queue.put(None)
            w.join(30)
        with self._lock:
            for c in self._all:
                try:
                    c.close()
                except sqlite3.Error:
                    pass
            self._all.clear()
        self._local = threading.local()


class PostgresStorage(Storage):
    """PostgreSQL through psycopg 3 (autocommit; one connection per thread)."""

    ph = "%s"

    def __init__(self, url: str):
        try:
            import psycopg
        except ImportError:
            raise RuntimeError('a PostgreSQL URL needs psycopg: pip install "psycopg[binary]"') from None
        self._psycopg = psycopg
        self.integrity_errors = (psycopg.errors.UniqueViolation,)
        self.url = url
        self._local = threading.local()
        cur = self._conn().cursor()
        for stmt in _PG_SCHEMA:
            cur.execute(stmt)

    def _conn(self):
        c = getattr(self._local, "conn", None)
        if c is None or c.closed:
            c = self._psycopg.connect(self.url, autocommit=True)
            self._local.conn = c
        return c

    def _begin_exclusive(self, cur) -> None:
        cur.execute("BEGIN")
        cur.execute("LOCK TABLE participants IN EXCLUSIVE MODE")


def open_storage(target: str | Path) -> Storage:
    """SQLite file path, or a ``postgresql://`` URL."""
    s = str(target)
    if s.startswith(("postgresql://", "postgres://")):
        return PostgresStorage(s)
    return SQLiteStorage(s)


EXPORT_COLUMNS = ["id", "participant_id", "participant_number", "session_id", "trial_index", "trial_id",
                  "base_trial", "kind", "trap", "stimuli", "sources", "roles", "items", "positions", "response",
                  "rt_ms", "played", "client", "received"]


def export_rows(store: Storage, files: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every stored response, with each stimulus resolved to its source, role and item (admin view)."""
    parts = {p["participant_id"]: p for p in store.participants()}
    out = []
    for r in store.responses():
        meta = [files.get(f, {}) for f in r["stimuli"]]
        r["participant_number"] = parts.get(r["participant_id"], {}).get("number")
        r["sources"] = [m.get("source") for m in meta]
        r["roles"] = [m.get("role") for m in meta]
        r["items"] = [m.get("item") for m in meta]
        out.append(r)
    return out


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(EXPORT_COLUMNS)
    for r in rows:
        w.writerow([json.dumps(r[c]) if isinstance(r[c], (list, dict)) else r[c] for c in EXPORT_COLUMNS])
    return buf.getvalue()
