"""On-disk LLM response cache: one SQLite file in WAL mode.

Why SQLite: a write is one transaction, so a crash mid-write leaves either the old state or the
new row, never a torn file; WAL lets readers run while one process writes; the busy timeout
serialises writers from several processes (e.g. parallel build jobs sharing one cache dir).
The key is ``ChatRequest.cache_key(backend.identity())`` (a SHA-256 over the request and the
model identity); nothing stored here depends on, or contains, an API key.

Processes sharing one cache (Ray workers, parallel runs) never pay twice for one request: the
``inflight`` table holds a claim per key being asked (:meth:`ResponseCache.try_claim`); another
process wanting the same key waits for the answer to appear in the cache. A claim whose owner
died (same host, pid gone) or that is older than ``stale_claim_s`` is taken over.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agentictagger.llm.types import LLMError, TokenUsage

CACHE_FILENAME = "llm_responses.sqlite3"
_SCHEMA_VERSION = 1
_BUSY_TIMEOUT_MS = 30_000
#: A claim older than this is taken over even when its owner cannot be checked (another host).
STALE_CLAIM_S = 3600.0
_HOST = socket.gethostname()


def _owner_alive(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    if host != _HOST:
        return True  # cannot tell: the age limit decides
    try:
        os.kill(int(rest.split(":", 1)[0]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


@dataclass
class CachedAnswer:
    text: str
    parsed: Any
    usage: TokenUsage
    model: str


class ResponseCache:
    """Thread- and process-safe key -> answer store under ``cache_dir``.

    One connection per process guarded by a lock: SQLite calls are short (well under a
    millisecond), so the lock is never the bottleneck next to an LLM call, and it avoids
    connections leaking from short-lived pool threads.
    """

    def __init__(self, cache_dir: str | Path):
        self.cache_dir = Path(cache_dir)
        self.path = self.cache_dir / CACHE_FILENAME
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        with self._lock:
            self._connect()

    def _unusable(self, exc: Exception) -> LLMError:
        return LLMError(
            f"LLM response cache {self.path} cannot be opened ({exc}); if the file is damaged, "
            f"delete it (only cached answers are lost) or point cache_dir elsewhere"
        )

    def _open(self) -> sqlite3.Connection:
        """A connection to the cache file, set up (WAL, the tables); closed again if that fails."""
        conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_MS / 1000, check_same_thread=False, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode keeps the database consistent after a crash (a power loss may
            # drop the last commits, which only costs a re-ask of those requests).
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS responses ("
                " key TEXT PRIMARY KEY,"
                " text TEXT NOT NULL,"
                " parsed TEXT NOT NULL,"
                " usage TEXT NOT NULL,"
                " model TEXT NOT NULL,"
                " created REAL NOT NULL)"
            )
            conn.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
            conn.execute("CREATE TABLE IF NOT EXISTS inflight (key TEXT PRIMARY KEY, owner TEXT NOT NULL, t REAL NOT NULL)")
            conn.execute(
                "INSERT OR IGNORE INTO meta(name, value) VALUES ('schema_version', ?)", (str(_SCHEMA_VERSION),)
            )
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect(self) -> sqlite3.Connection:
        # A connection inherited through fork() must not be used by the child: reopen per pid.
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                conn = self._open()
                break
            except sqlite3.OperationalError as exc:
                # Processes opening a new cache at once (Ray workers): switching it to WAL or
                # creating its tables can be answered "locked" at once, without the busy wait
                # (SQLite's way out of a deadlock between two writers); the open is tried again.
                if "locked" in str(exc) and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                raise self._unusable(exc) from exc
            except sqlite3.DatabaseError as exc:
                raise self._unusable(exc) from exc
        self._conn, self._pid = conn, os.getpid()
        return conn

    def get(self, key: str) -> CachedAnswer | None:
        with self._lock:
            row = self._connect().execute(
                "SELECT text, parsed, usage, model FROM responses WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        text, parsed, usage, model = row
        return CachedAnswer(text=text, parsed=json.loads(parsed), usage=TokenUsage(**json.loads(usage)), model=model)

    def put(self, key: str, answer: CachedAnswer) -> None:
        record = (
            key,
            answer.text,
            json.dumps(answer.parsed, ensure_ascii=False),
            json.dumps(asdict(answer.usage)),
            answer.model,
            time.time(),
        )
        with self._lock:
            # Autocommit mode: this single statement is its own atomic transaction.
            self._connect().execute(
                "INSERT OR REPLACE INTO responses(key, text, parsed, usage, model, created) VALUES (?,?,?,?,?,?)",
                record,
            )

    # -- claims across processes -------------------------------------------------------------
    def _owner(self) -> str:
        return f"{_HOST}:{os.getpid()}:{threading.get_ident()}"

    def try_claim(self, key: str, stale_claim_s: float = STALE_CLAIM_S) -> bool:
        """Claim ``key`` for asking the backend: True when this thread now holds it (release it
        with :meth:`release_claim`), False while another live process or thread holds it. The
        caller holding no claim waits and looks in the cache again."""
        owner = self._owner()
        with self._lock:
            conn = self._connect()
            if conn.execute("INSERT OR IGNORE INTO inflight(key, owner, t) VALUES (?,?,?)", (key, owner, time.time())).rowcount:
                return True
            row = conn.execute("SELECT owner, t FROM inflight WHERE key = ?", (key,)).fetchone()
            if row is None:  # released meanwhile: try again at the next poll
                return False
            if row[0] == owner:
                return True
            if _owner_alive(row[0]) and time.time() - row[1] < stale_claim_s:
                return False
            # The holder died (or its claim is too old): take the claim over.
            taken = conn.execute(
                "UPDATE inflight SET owner = ?, t = ? WHERE key = ? AND owner = ?", (owner, time.time(), key, row[0])
            ).rowcount
            return bool(taken)

    def release_claim(self, key: str) -> None:
        with self._lock:
            self._connect().execute("DELETE FROM inflight WHERE key = ? AND owner = ?", (key, self._owner()))

    def __len__(self) -> int:
        with self._lock:
            return int(self._connect().execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return self._connect().execute("SELECT 1 FROM responses WHERE key = ?", (key,)).fetchone() is not None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def __enter__(self) -> "ResponseCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
