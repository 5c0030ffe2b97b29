"""Batch mode (``llm.mode: batch``): the fan-out stages' requests through a provider's Batch API.

One :meth:`BatchRunner.map` call (what :meth:`LLMClient.map` does in batch mode):

1. answers already in the response cache come from it (and a remembered "no valid answer"
   verdict, when asked to), exactly as online;
2. every other request (identical ones once) becomes one line of a JSONL input file in the OpenAI
   Batch format (``custom_id`` = the request's cache key, ``method``, ``url``, ``body`` = what an
   online call sends); the file is uploaded (``POST /files``, purpose "batch") and a batch created
   (``POST /batches``, endpoint ``/v1/chat/completions``, window 24 h); at most
   ``batch_max_requests`` requests (and 190 MB) per batch, more are split;
3. the batches are polled (``GET /batches/{id}``) every ``batch_poll_interval_s``, growing 1.5x per
   poll up to ``batch_poll_max_interval_s``, until completed, failed, expired or cancelled; then the
   output and error files are downloaded (``GET /files/{id}/content``);
4. each answer is read by the backend exactly as an online answer and validated by
   :func:`validate_answer`; a valid one goes into the same response cache under the request's key;
5. follow-up rounds, also as batches (so everything stays at the batch price): an invalid answer is
   re-asked with the same correction as online (up to ``max_reasks``); a request that failed inside
   its batch (5xx, 429, expired, cancelled, no line at all, a failed batch) is submitted again (up
   to ``batch_max_resubmits``); a 4xx answer is not. A request left without an answer is an
   LLMError in its slot, as online.

Crash safety. A journal, ``batches.jsonl`` in the cache dir, gets one fsynced line when an input
file is uploaded and one when its batch is created, both before any polling; the input file itself
is kept under ``batches/`` until the batch is collected. A later map call that needs a request of a
batch still open in the journal polls and collects that batch instead of submitting the request
again, so a process killed after submission resumes by batch id and nothing is paid twice. A kill
between creating a batch and journaling it is covered by the upload line: the resumed run lists the
provider's batches and adopts the one created from that file. A batch is marked collected only
when the map call that used it has settled every request in it (re-asks and resubmissions
included): after a crash in a follow-up round the same follow-ups are derived again from the
downloaded answers (output files stay with the provider) and their batches adopted in turn.

Usage. Every request is counted as a call and a batch call when its batch is created, its tokens
and its cost (``batch_price_factor`` x the online price) when its batch is first read (journaled,
so a resumed run does not count them again); a failed line costs nothing.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from agentictagger.llm.backends.openai_compat import is_transient_status
from agentictagger.llm.types import ChatRequest, ChatResponse, InvalidAnswerError, LLMError, TransientLLMError
from agentictagger.llm.usage import estimate_cost
from agentictagger.llm.validate import validate_answer

if TYPE_CHECKING:
    from agentictagger.llm.client import LLMClient, Progress

log = logging.getLogger(__name__)

JOURNAL_FILENAME = "batches.jsonl"
INPUT_DIRNAME = "batches"
_LOCK_FILENAME = "batches.lock"
TERMINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})
#: Below OpenAI's 200 MB limit on a batch input file.
MAX_BATCH_FILE_BYTES = 190 * 1024 * 1024
_POLL_GROWTH = 1.5
_LIST_PAGES = 20  # pages of 100 batches searched for one created from an uploaded file
_T = TypeVar("_T")


class BatchJournal:
    """Append-only record of this cache dir's batches, plus their input files.

    Events (one JSON line each, fsynced before the call returns): ``uploaded`` (input file id,
    endpoint identity, stage, request count), ``submitted`` (batch id), ``accounted`` (its lines'
    usage was recorded), ``collected`` (done with) and ``abandoned`` (never created, or gone). A line
    cut short by a crash is skipped when read.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.path = self.root / JOURNAL_FILENAME
        self.inputs = self.root / INPUT_DIRNAME

    def append(self, event: str, local: str, **fields: Any) -> None:
        line = json.dumps({"event": event, "local": local, **fields, "t": round(time.time(), 3)}, sort_keys=True)
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue  # cut short by a crash
            if isinstance(row, dict) and "event" in row and "local" in row:
                out.append(row)
        return out

    def states(self) -> dict[str, dict[str, Any]]:
        """Each batch's folded state by local name: the upload fields plus batch_id, accounted, closed."""
        states: dict[str, dict[str, Any]] = {}
        for row in self.entries():
            st = states.setdefault(row["local"], {"local": row["local"], "accounted": False, "closed": False})
            event = row["event"]
            if event == "uploaded":
                st.update({k: row.get(k) for k in ("file_id", "identity", "stage", "n")})
            elif event == "submitted":
                st["batch_id"] = row.get("batch_id")
            elif event == "accounted":
                st["accounted"] = True
            elif event in ("collected", "abandoned"):
                st["closed"] = True
        return states

    def open_batches(self, identity: str) -> list[dict[str, Any]]:
        """Batches of this endpoint uploaded and not yet collected or abandoned, oldest first."""
        return [s for s in self.states().values() if not s["closed"] and s.get("identity") == identity and s.get("file_id")]

    # -- input files --------------------------------------------------------------------------
    def input_path(self, local: str) -> Path:
        return self.inputs / f"{local}.jsonl"

    def write_input(self, local: str, data: bytes) -> None:
        """Atomically (temp file + rename), so a crash never leaves half an input file."""
        self.inputs.mkdir(parents=True, exist_ok=True)
        from agentictagger.files import atomic_write_bytes

        atomic_write_bytes(self.input_path(local), data)

    def drop_input(self, local: str) -> None:
        self.input_path(local).unlink(missing_ok=True)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive across processes and threads sharing this cache dir (each call opens its own file)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / _LOCK_FILENAME, "a") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def custom_ids(jsonl: bytes) -> set[str]:
    """The custom_ids of a batch input file."""
    ids = set()
    for line in jsonl.splitlines():
        if line.strip():
            ids.add(str(json.loads(line)["custom_id"]))
    return ids


@dataclass
class _Item:
    """One distinct request of a map call, followed through its rounds."""

    key: str  # cache key of the original request: where its answer is stored
    request: ChatRequest  # the original (answers are validated against it)
    current: ChatRequest  # what is asked this round (the original or a re-ask)
    custom_id: str  # cache key of ``current``
    slots: list[int]
    attempts: int = 0  # times sent
    reasks: int = 0
    resubmits: int = 0


@dataclass
class _Batch:
    local: str
    stage: str
    ids: set[str]
    file_id: str | None = None
    batch_id: str | None = None
    info: dict[str, Any] | None = None
    lines: list[dict[str, Any]] = field(default_factory=list)
    error: LLMError | None = None  # its requests could not be answered this time
    resubmittable: bool = False  # with ``error``: the batch is finished or gone; its requests may be sent again
    replayed: bool = False  # its lines were accounted by an earlier (killed) run

    @property
    def status(self) -> str:
        return str((self.info or {}).get("status") or "unsubmitted")

    @property
    def finished(self) -> bool:
        """Nothing more will come of it: collected in full, or failed/gone for good."""
        return (self.error is None and self.status in TERMINAL_STATUSES) or self.resubmittable


@dataclass
class _Outcome:
    response: ChatResponse | None = None
    error: LLMError | None = None
    retry: bool = False  # the error is worth a resubmission
    sent: bool = True
    # Read again from a batch a killed run had read: the re-ask or resubmission it leads to was
    # counted by that run already.
    replayed: bool = False


class BatchRunner:
    """Runs :meth:`LLMClient.map` through the backend's Batch API (see the module docstring)."""

    def __init__(self, client: "LLMClient"):
        self.client = client
        self.cfg = client.cfg
        self.backend: Any = client.backend
        self.journal = BatchJournal(client.cache.cache_dir) if client.cache is not None else None
        if self.journal is None:
            log.warning("llm.mode 'batch' without a cache dir: submitted batches are not journaled, so a "
                        "killed run cannot resume them and submits again")

    # -- the map call -------------------------------------------------------------------------
    def map(
        self,
        requests: Sequence[ChatRequest],
        stage: str,
        progress: "Progress | None" = None,
        remember_invalid: bool = False,
    ) -> list[ChatResponse | LLMError]:
        client = self.client
        total = len(requests)
        results: list[ChatResponse | LLMError | None] = [None] * total
        client.usage.begin(stage)
        try:
            work: dict[str, _Item] = {}
            for i, req in enumerate(requests):
                key = req.cache_key(client.identity)
                if key in work:
                    work[key].slots.append(i)
                    continue
                try:
                    hit = client.cached(key, stage)
                    if hit is None and remember_invalid:
                        client.raise_if_known_invalid(key, stage)
                except LLMError as exc:
                    results[i] = exc
                    continue
                if hit is not None:
                    results[i] = hit
                else:
                    work[key] = _Item(key, req, req, key, [i])
            done = total - sum(len(it.slots) for it in work.values())
            if progress is not None:
                progress(done, total)

            used: dict[str, _Batch] = {}
            asked: set[str] = set()
            pending = list(work.values())
            while pending:
                outcomes = self._round(pending, stage, used, asked)
                still = []
                for item in pending:
                    final = self._settle(item, outcomes[item.custom_id], stage, remember_invalid)
                    if final is None:
                        still.append(item)
                        continue
                    self._fill(results, item, final, stage)
                    done += len(item.slots)
                if progress is not None:
                    progress(done, total)
                pending = still
            self._close(used, asked)
        finally:
            client.usage.end(stage)
        return results  # type: ignore[return-value]

    def _fill(self, results: list[Any], item: _Item, final: ChatResponse | LLMError, stage: str) -> None:
        """The answer in the item's first slot; identical requests are cache hits, as online."""
        first, *rest = item.slots
        results[first] = final
        for i in rest:
            if isinstance(final, ChatResponse):
                self.client.usage.record_cache_hit(stage)
                results[i] = ChatResponse(text=final.text, parsed=final.parsed, usage=final.usage, cached=True,
                                          model=final.model, attempts=0)
            else:
                self.client.usage.record_failure(stage)
                results[i] = final

    def _settle(
        self, item: _Item, outcome: _Outcome, stage: str, remember_invalid: bool
    ) -> ChatResponse | LLMError | None:
        """The item's final answer or error, or None when it is asked again next round."""
        client, cfg = self.client, self.cfg
        if outcome.sent:
            item.attempts += 1
        if outcome.response is not None:
            resp = outcome.response
            try:
                resp.parsed = validate_answer(item.request, resp.text)
            except InvalidAnswerError as exc:
                if item.reasks < cfg.max_reasks:
                    item.reasks += 1
                    if not outcome.replayed:
                        client.usage.record_reask(stage)
                    log.info("stage %s: invalid batch answer, re-asking in the next batch (%d/%d): %s",
                             stage, item.reasks, cfg.max_reasks, exc)
                    item.current = client.fitting_reask(item.current, resp.text, exc)
                    item.custom_id = item.current.cache_key(client.identity)
                    return None
                client.usage.record_failure(stage)
                err = client.final_error(InvalidAnswerError, stage, item.attempts, exc,
                                          note=f"no valid answer after {cfg.max_reasks} re-ask(s)")
                err.reasks_tried = cfg.max_reasks  # type: ignore[attr-defined]
                if remember_invalid:
                    client.remember_invalid(item.key, err)
                return err
            resp.attempts, resp.cached = item.attempts, False
            client.store_answer(item.key, resp, stage)
            return resp
        error = outcome.error
        assert error is not None
        if outcome.retry and item.resubmits < cfg.batch_max_resubmits:
            item.resubmits += 1
            if not outcome.replayed:
                client.usage.record_retry(stage)
            log.info("stage %s: request failed in its batch, resubmitting (%d/%d): %s", stage, item.resubmits,
                     cfg.batch_max_resubmits, error)
            return None
        client.usage.record_failure(stage)
        kind = TransientLLMError if isinstance(error, TransientLLMError) else LLMError
        return client.final_error(kind, stage, item.attempts, error)

    # -- one round: adopt open batches, submit the rest, wait, read ---------------------------
    def _round(self, items: list[_Item], stage: str, used: dict[str, _Batch], asked: set[str]) -> dict[str, _Outcome]:
        by_id = {it.custom_id: it for it in items}
        asked.update(by_id)
        with self._locked():
            batches = self._adopt(set(by_id), used)
            covered = set().union(*(b.ids for b in batches)) if batches else set()
            for chunk in self._chunks([it for it in items if it.custom_id not in covered]):
                batches.append(self._submit(chunk, stage))
        for b in batches:
            used[b.local] = b
        self._wait(batches)
        outcomes: dict[str, _Outcome] = {}
        for b in batches:
            if b.error is None:
                self._download(b)
            ids = b.ids & by_id.keys()
            if b.error is not None:
                for cid in ids - outcomes.keys():
                    outcomes[cid] = _Outcome(error=b.error, retry=b.resubmittable, sent=b.batch_id is not None)
                continue
            self._account(b)
            for line in b.lines:
                cid = str(line.get("custom_id"))
                if cid in ids and cid not in outcomes:
                    outcomes[cid] = self._read_line(b, line, by_id[cid].current)
                    outcomes[cid].replayed = b.replayed
            for cid in ids - outcomes.keys():
                err = TransientLLMError(f"batch {b.batch_id} ended {b.status} without an answer for this request")
                outcomes[cid] = _Outcome(error=err, retry=True)
        for cid in by_id.keys() - outcomes.keys():  # not reachable: every id is adopted or submitted
            outcomes[cid] = _Outcome(error=LLMError("request was not submitted"), sent=False)
        return outcomes

    def _locked(self) -> Any:
        return self.journal.lock() if self.journal is not None else nullcontext()

    def _adopt(self, wanted: set[str], used: dict[str, _Batch]) -> list[_Batch]:
        """Open batches of the journal that hold wanted requests (each batch once per map call)."""
        if self.journal is None:
            return []
        out: list[_Batch] = []
        covered: set[str] = set()
        for st in self.journal.open_batches(self.client.identity):
            local = st["local"]
            if local in used:
                continue
            ids = self._input_ids(st)
            if ids is None or not (ids & wanted) - covered:
                continue
            b = _Batch(local, str(st.get("stage") or "default"), ids, file_id=st["file_id"],
                       batch_id=st.get("batch_id"), replayed=bool(st["accounted"]))
            if b.batch_id is None and not self._find_created(b):
                continue
            log.info("resuming batch %s (%d requests) from the journal instead of submitting again", b.batch_id,
                     len(ids))
            covered |= ids & wanted
            out.append(b)
        return out

    def _input_ids(self, st: dict[str, Any]) -> set[str] | None:
        assert self.journal is not None
        path = self.journal.input_path(st["local"])
        try:
            data = path.read_bytes() if path.exists() else self._retrying(lambda: self.backend.file_content(st["file_id"]))
            return custom_ids(data)
        except (LLMError, ValueError, KeyError, OSError) as exc:
            log.warning("batch input %s (file %s) cannot be read (%s); its batch is not resumed", st["local"],
                        st.get("file_id"), exc)
            return None

    def _find_created(self, b: _Batch) -> bool:
        """A batch journaled as uploaded only: the process died around creating it. Adopt the batch
        the provider created from that file, if any (its requests were sent, so count them now);
        else abandon the upload (nothing was sent)."""
        assert self.journal is not None and b.file_id is not None
        try:
            found = self._find_batch(b.file_id)
        except LLMError as exc:
            log.warning("cannot list batches to look for one created from %s (%s)", b.file_id, exc)
            return False
        if found is None:
            self.journal.append("abandoned", b.local, reason="no batch was created from the upload")
            return False
        b.batch_id, b.info = str(found["id"]), found
        self.journal.append("submitted", b.local, batch_id=b.batch_id, found_by="list")
        self._count_sent(b.stage, len(b.ids))
        return True

    def _find_batch(self, file_id: str) -> dict[str, Any] | None:
        after = None
        for _ in range(_LIST_PAGES):
            page, more = self._retrying(lambda: self.backend.list_batches(after=after))
            for info in page:
                if info.get("input_file_id") == file_id:
                    return info
            if not more or not page:
                return None
            after = page[-1]["id"]
        return None

    def _chunks(self, items: list[_Item]) -> Iterator[list[tuple[_Item, bytes]]]:
        chunk: list[tuple[_Item, bytes]] = []
        size = 0
        for it in items:
            line = (json.dumps(self.backend.batch_line(it.current, it.custom_id), ensure_ascii=False) + "\n").encode()
            if chunk and (len(chunk) >= self.cfg.batch_max_requests or size + len(line) > MAX_BATCH_FILE_BYTES):
                yield chunk
                chunk, size = [], 0
            chunk.append((it, line))
            size += len(line)
        if chunk:
            yield chunk

    def _submit(self, chunk: list[tuple[_Item, bytes]], stage: str) -> _Batch:
        """Upload and create one batch, journaling each step before the next."""
        local = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}"
        b = _Batch(local, stage, {it.custom_id for it, _ in chunk})
        data = b"".join(line for _, line in chunk)
        j = self.journal
        if j is not None:
            j.write_input(local, data)
        try:
            b.file_id = self._retrying(lambda: self.backend.upload_batch_file(data, f"agentictagger-{local}.jsonl"))
        except LLMError as exc:
            if j is not None:
                j.drop_input(local)
            b.error = exc
            return b
        if j is not None:
            j.append("uploaded", local, file_id=b.file_id, identity=self.client.identity, stage=stage, n=len(chunk))
        try:
            b.info = self._create(b.file_id, local)
        except LLMError as exc:
            b.error = exc
            if j is not None and not isinstance(exc, TransientLLMError):
                j.append("abandoned", local, reason=str(exc)[:300])  # refused: nothing was created
            # A transient failure stays journaled as uploaded: the next run looks for its batch.
            return b
        b.batch_id = str(b.info["id"])
        if j is not None:
            j.append("submitted", local, batch_id=b.batch_id)
        self._count_sent(stage, len(chunk))
        log.info("stage %s: submitted batch %s (%d requests)", stage, b.batch_id, len(chunk))
        return b

    def _create(self, file_id: str, local: str) -> dict[str, Any]:
        """Create the batch; after a transient error, adopt the batch if it was created after all."""
        tries = self.cfg.max_retries + 1
        for attempt in range(tries):
            try:
                return self.backend.create_batch(file_id, {"agentictagger_local": local})
            except TransientLLMError as exc:
                if attempt + 1 >= tries:
                    raise
                self.client.sleep(self.client.backoff(attempt, getattr(exc, "retry_after", None)))
                found = self._find_batch(file_id)
                if found is not None:
                    return found
        raise AssertionError("unreachable")

    def _count_sent(self, stage: str, n: int) -> None:
        client = self.client
        with client.counter_lock:
            client._backend_calls += n
        for _ in range(n):
            client.usage.record_sent(stage, batch=True)

    def _retrying(self, call: Callable[[], _T]) -> _T:
        """``call()``, retrying transient errors with the client's backoff (max_retries)."""
        tries = self.cfg.max_retries + 1
        for attempt in range(tries):
            try:
                return call()
            except TransientLLMError as exc:
                if attempt + 1 >= tries:
                    raise
                self.client.sleep(self.client.backoff(attempt, getattr(exc, "retry_after", None)))
        raise AssertionError("unreachable")

    # -- waiting and reading ------------------------------------------------------------------
    def _wait(self, batches: list[_Batch]) -> None:
        """Poll until every batch is terminal; a batch whose polls keep failing gets an error."""
        waiting = [b for b in batches if b.error is None and b.status not in TERMINAL_STATUSES]
        interval = self.cfg.batch_poll_interval_s
        failures: dict[str, int] = {}
        while waiting:
            for b in list(waiting):
                try:
                    info = self.backend.retrieve_batch(b.batch_id)
                except TransientLLMError as exc:
                    failures[b.local] = failures.get(b.local, 0) + 1
                    if failures[b.local] > self.cfg.max_retries:
                        b.error = exc  # it stays open in the journal: a rerun polls it again
                        waiting.remove(b)
                    continue
                except LLMError as exc:
                    b.error = exc
                    if getattr(exc, "status", None) == 404:  # gone: its requests may be sent again
                        b.resubmittable = True
                        if self.journal is not None:
                            self.journal.append("abandoned", b.local, reason=f"batch {b.batch_id} not found")
                    waiting.remove(b)
                    continue
                failures[b.local] = 0
                if info.get("status") != b.status:
                    log.info("batch %s: %s (%s)", b.batch_id, info.get("status"), info.get("request_counts"))
                b.info = info
                if b.status in TERMINAL_STATUSES:
                    waiting.remove(b)
            if waiting:
                self.client.sleep(interval)
                interval = min(interval * _POLL_GROWTH, self.cfg.batch_poll_max_interval_s)

    def _download(self, b: _Batch) -> None:
        """The output and error files' lines; a failed batch makes its requests resubmittable."""
        info = b.info or {}
        if b.status == "failed":
            errors = ((info.get("errors") or {}).get("data") or [])
            why = "; ".join(str(e.get("message") or e.get("code")) for e in errors[:3]) or "no reason given"
            b.error, b.resubmittable = TransientLLMError(f"batch {b.batch_id} failed: {why}"), True
            return
        try:
            for key in ("output_file_id", "error_file_id"):
                file_id = info.get(key)
                if file_id:
                    data = self._retrying(lambda: self.backend.file_content(file_id))
                    b.lines.extend(json.loads(ln) for ln in data.splitlines() if ln.strip())
        except (LLMError, ValueError) as exc:
            b.lines = []
            b.error = exc if isinstance(exc, LLMError) else TransientLLMError(f"batch {b.batch_id}: unreadable file ({exc})")

    def _account(self, b: _Batch) -> None:
        """Record every line's usage once, at the batch price (the journal says whether it was)."""
        if self.journal is not None:
            with self.journal.lock():
                st = self.journal.states().get(b.local, {})
                if st.get("accounted"):
                    b.replayed = True
                    return
                self._record_lines(b)
                self.journal.append("accounted", b.local, batch_id=b.batch_id)
        elif not b.replayed:
            self._record_lines(b)
            b.replayed = True

    def _record_lines(self, b: _Batch) -> None:
        cfg, usage = self.cfg, self.client.usage
        for line in b.lines:
            resp = line.get("response") or {}
            if resp.get("status_code") == 200 and not line.get("error"):
                try:
                    tokens = self.backend.usage_from_body(resp.get("body"))
                except LLMError:
                    usage.record_failed_call(b.stage, 0.0, sent=True)
                    continue
                cost = estimate_cost(tokens, cfg.price_per_million_input, cfg.price_per_million_output)
                usage.record_call(b.stage, tokens, 0.0, cost * cfg.batch_price_factor, sent=True)
            else:
                usage.record_failed_call(b.stage, 0.0, sent=True)

    def _read_line(self, b: _Batch, line: dict[str, Any], request: ChatRequest) -> _Outcome:
        resp = line.get("response") or {}
        status, body, error = resp.get("status_code"), resp.get("body"), line.get("error")
        if status == 200 and not error:
            try:
                return _Outcome(response=self.backend.response_from_body(request, body))
            except LLMError as exc:
                return _Outcome(error=exc, retry=isinstance(exc, TransientLLMError))
        if isinstance(error, dict):
            detail: Any = error
        elif isinstance(body, dict):
            detail = body.get("error", body)
        else:
            detail = body
        if isinstance(detail, dict):
            detail = f"{detail.get('code') or ''} {detail.get('message') or ''}".strip()
        transient = is_transient_status(status)
        cls = TransientLLMError if transient else LLMError
        err = cls(f"batch {b.batch_id}: request answered {f'HTTP {status}' if status else 'no response'}: {detail}")
        err.status = status  # type: ignore[attr-defined]
        return _Outcome(error=err, retry=transient)

    def _close(self, used: dict[str, _Batch], asked: set[str]) -> None:
        """Mark the batches of this call collected once all their requests are settled: asked by
        this call, or answered in the cache (by the killed run this call resumed)."""
        if self.journal is None:
            return
        cache = self.client.cache
        for b in used.values():
            if b.batch_id is None or not b.finished:
                continue
            if not all(cid in asked or (cache is not None and cid in cache) for cid in b.ids):
                continue
            if not b.resubmittable or b.status in TERMINAL_STATUSES:
                self.journal.append("collected", b.local, batch_id=b.batch_id, status=b.status)
            self.journal.drop_input(b.local)
