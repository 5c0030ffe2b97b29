"""Embedded backend: llama.cpp in-process on a GGUF file (offline; default SmolLM2-135M-Instruct).

What it adds over ``Llama.create_chat_completion``:

* Output constraints are compiled to a GBNF grammar, so a constrained answer is always valid:
  a :class:`ChoiceConstraint` becomes an alternation of the exact choice strings, a
  :class:`JsonSchemaConstraint` goes through ``LlamaGrammar.from_json_schema``.
* ``choice_mode="likelihood"`` picks a choice by its log-probability (the choice's tokens followed
  by the end-of-turn token) given the chat-formatted prompt. The prompt is evaluated once; each
  choice is decoded as a continuation of it, and choices that share leading tokens share their
  evaluation.
* Prefix reuse: the live KV cache keeps the previous call's tokens, and a small RAM cache of
  per-sequence KV snapshots lets interleaved prompt families (shared instructions first, the item
  last) resume from their longest matching prefix. ``usage.cached_prompt_tokens`` counts the
  prompt tokens that were not evaluated because of it.

Usage accounting: ``prompt_tokens`` is the chat-formatted prompt length; ``completion_tokens`` is
the number of generated tokens, or in likelihood mode the number of choice tokens decoded to score
the choices (what the call really cost).

llama.cpp contexts are not thread-safe and loading costs memory, so each (GGUF, n_ctx, n_threads)
is loaded once per process and every call holds that model's lock.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import jsonschema
import numpy as np

import llama_cpp
from llama_cpp import Llama
from llama_cpp.llama_chat_format import Jinja2ChatFormatter
from llama_cpp.llama_grammar import SchemaConverter

from agentictagger.config import LLMConfig
from agentictagger.llm.grammar import choice_grammar, gbnf_literal
from agentictagger.llm.models import bundled_model_path, get_spec, resolve_model  # noqa: F401 (re-exported)
from agentictagger.llm.types import (
    ChatRequest,
    ChatResponse,
    ChoiceConstraint,
    InvalidAnswerError,
    JsonSchemaConstraint,
    LLMError,
    Message,
    SamplingParams,
    TokenUsage,
)

log = logging.getLogger(__name__)

LikelihoodNorm = Literal["sum", "mean"]

_HASH_BYTES = 1 << 20
# A snapshot is only worth its memcpy when it saves a real chunk of prompt evaluation.
_MIN_SNAPSHOT_TOKENS = 32
# llama.cpp's CPU kernels compute a 1-token batch on another path (quantized activations) than
# larger batches, and the logits differ by up to ~0.4 nats on SmolLM2. So that a reused prefix
# gives the same answer as a fresh evaluation, no decode whose logits are used is ever 1 token.
_MIN_BATCH = 2
_PREVIEW = 160


def _file_fingerprint(path: str) -> str:
    """Content hash (first MiB + size): stable across copies and touches, cheap on big files."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(_HASH_BYTES))
    h.update(str(os.path.getsize(path)).encode())
    return h.hexdigest()[:12]


def _preview(text: str) -> str:
    flat = text.replace("\n", "\\n")
    return repr(flat if len(flat) <= _PREVIEW else flat[:_PREVIEW] + f"... [{len(text)} chars]")


# --------------------------------------------------------------------------- grammars


class _SchemaConverter(SchemaConverter):
    """llama.cpp's JSON-schema-to-GBNF converter with a correct literal escaper: the stock one
    leaves backslashes alone, so an enum value containing a quote or a backslash yields a
    grammar llama.cpp cannot parse."""

    def _format_literal(self, literal: str) -> str:
        return gbnf_literal(literal)


def json_schema_grammar(schema: dict[str, Any]) -> str:
    """GBNF for JSON values valid under ``schema`` (llama.cpp's converter, fixed escaping)."""
    try:
        conv = _SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
        resolved = conv.resolve_refs(json.loads(json.dumps(schema)), "schema")
        conv.visit(resolved, "")
        return conv.format_grammar()
    except Exception as exc:  # the converter raises bare Exceptions/asserts on unsupported schemas
        raise LLMError(
            f"cannot turn the JSON schema into a grammar ({type(exc).__name__}: {exc}); "
            "use plain objects, arrays, strings, numbers, booleans and enums"
        ) from exc


# --------------------------------------------------------------------------- loaded model


class _StateCache:
    """LRU of per-sequence KV snapshots keyed by the exact token prefix they hold."""

    def __init__(self, max_bytes: int, max_entries: int = 32) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[int, ...], bytes] = OrderedDict()
        self._bytes = 0

    def __contains__(self, key: tuple[int, ...]) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def best(self, tokens: Sequence[int]) -> tuple[tuple[int, ...] | None, int]:
        """The entry sharing the longest prefix with ``tokens`` (shortest key on ties)."""
        best_key, best_len = None, 0
        for key in self._entries:
            n = _common_prefix(key, tokens)
            if n > best_len or (n == best_len and best_key is not None and n > 0 and len(key) < len(best_key)):
                best_key, best_len = key, n
        return best_key, best_len

    def get(self, key: tuple[int, ...]) -> bytes:
        self._entries.move_to_end(key)
        return self._entries[key]

    def put(self, key: tuple[int, ...], data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        if key in self._entries:
            self._bytes -= len(self._entries.pop(key))
        self._entries[key] = data
        self._bytes += len(data)
        while self._entries and (self._bytes > self.max_bytes or len(self._entries) > self.max_entries):
            _, old = self._entries.popitem(last=False)
            self._bytes -= len(old)

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - float(np.max(logits))
    return z - np.log(np.exp(z).sum())


@dataclass
class ChoiceScore:
    """Log-probability of one choice (its tokens + end-of-turn) as the assistant's whole answer.

    ``logprob`` is -inf for a choice skipped by pruning (it cannot beat the best one)."""

    choice: str
    logprob: float
    n_tokens: int

    @property
    def mean_logprob(self) -> float:
        return self.logprob / self.n_tokens


class _LoadedModel:
    """One llama.cpp model + context, its lock, chat formatting and prefix-state cache."""

    def __init__(self, path: str, n_ctx: int, n_threads: int, state_cache_bytes: int) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.llm = Llama(
            model_path=path,
            n_ctx=n_ctx,
            n_batch=min(512, n_ctx),
            n_threads=n_threads,
            n_threads_batch=n_threads,
            verbose=False,
        )
        self.n_ctx = self.llm.n_ctx()
        self.n_batch = self.llm.n_batch
        self.vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        self.fingerprint = _file_fingerprint(path)
        self.states = _StateCache(state_cache_bytes)
        self._closers: tuple[int, Any] | None = None
        # Our own batch for scoring continuations: it asks for logits at every position, which
        # Llama.eval only does when the whole context was created with logits_all (n_ctx x vocab floats).
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self._setup_chat_format()

    def __del__(self) -> None:  # pragma: no cover - interpreter shutdown order varies
        batch = getattr(self, "_batch", None)
        if batch is not None:
            llama_cpp.llama_batch_free(batch)
            self._batch = None

    # -- chat formatting ---------------------------------------------------

    def _token_text(self, token_id: int) -> str:
        return self.llm.detokenize([token_id], special=True).decode("utf-8", errors="replace")

    def _setup_chat_format(self) -> None:
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise LLMError(
                f"{self.path}: the GGUF has no chat template (tokenizer.chat_template); use an "
                "instruction-tuned GGUF that ships one"
            )
        eos, bos = self.llm.token_eos(), self.llm.token_bos()
        eos_text = self._token_text(eos) if eos >= 0 else ""
        bos_text = self._token_text(bos) if bos >= 0 else ""
        self.formatter = Jinja2ChatFormatter(template, eos_text, bos_text, add_generation_prompt=True)
        closed_turn = Jinja2ChatFormatter(template, eos_text, bos_text, add_generation_prompt=False)
        # The token that ends an assistant turn, read off the template itself (SmolLM2:
        # <|im_end|>), because llama_vocab_eot is unset in many GGUFs.
        sentinel = "\u2063ANSWER\u2063"
        rendered = closed_turn(
            messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": sentinel}]
        ).prompt
        after = rendered.split(sentinel, 1)[1] if sentinel in rendered else ""
        toks = self.llm.tokenize(after.encode("utf-8"), add_bos=False, special=True) if after else []
        self.end_of_turn = toks[0] if toks and llama_cpp.llama_vocab_is_eog(self.vocab, toks[0]) else eos

    def prompt_tokens(self, messages: Sequence[Message]) -> list[int]:
        """Chat-formatted prompt tokens. Message contents are tokenized as plain text, so an item
        text containing "<|im_end|>" cannot forge a turn boundary; only the template's own
        markup becomes special tokens."""
        sentinels = [f"\u2063M{i}\u2063" for i in range(len(messages))]
        res = self.formatter(messages=[{"role": m.role, "content": s} for m, s in zip(messages, sentinels)])
        text = res.prompt
        pieces: list[tuple[str, bool]] = []  # (text, is_template_markup)
        pos = 0
        for msg, s in zip(messages, sentinels):
            i = text.find(s, pos)
            if i < 0:
                # A template that rewrites contents (rare): fall back to plain rendering, with
                # contents still unable to produce special tokens only if they contain none.
                return self._tokenize_rendered(messages, res.added_special)
            pieces.append((text[pos:i], True))
            pieces.append((msg.content, False))
            pos = i + len(s)
        pieces.append((text[pos:], True))
        tokens: list[int] = []
        first = True
        for piece, special in pieces:
            if piece:
                tokens += self.llm.tokenize(
                    piece.encode("utf-8"), add_bos=first and not res.added_special, special=special
                )
                first = False
        return tokens

    def _tokenize_rendered(self, messages: Sequence[Message], added_special: bool) -> list[int]:
        log.warning("chat template rewrites message contents; tokenizing the rendered prompt as a whole")
        res = self.formatter(messages=[{"role": m.role, "content": m.content} for m in messages])
        return self.llm.tokenize(res.prompt.encode("utf-8"), add_bos=not res.added_special, special=True)

    def text_tokens(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    # -- KV cache management ------------------------------------------------

    def _memory(self) -> Any:
        return llama_cpp.llama_get_memory(self.llm.ctx)

    def _truncate(self, n: int) -> bool:
        """Drop KV entries at positions >= n; False when the model cannot (recurrent models)."""
        ok = bool(llama_cpp.llama_memory_seq_rm(self._memory(), 0, n, -1))
        if ok:
            self.llm.n_tokens = n
            # Logits in the context belong to a token we just dropped: force a decode first.
            self.llm._requires_eval = True
        return ok

    def reset(self) -> None:
        llama_cpp.llama_memory_clear(self._memory(), True)
        self.llm.n_tokens = 0
        self.llm._requires_eval = True

    def _snapshot(self) -> bytes:
        size = llama_cpp.llama_state_seq_get_size(self.llm.ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        n = llama_cpp.llama_state_seq_get_data(self.llm.ctx, buf, size, 0)
        return bytes(memoryview(buf)[:n])

    def _restore(self, key: tuple[int, ...], data: bytes) -> bool:
        self.reset()
        buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        if llama_cpp.llama_state_seq_set_data(self.llm.ctx, buf, len(data), 0) == 0:
            self.reset()
            return False
        self.llm.input_ids[: len(key)] = key
        self.llm.n_tokens = len(key)
        return True

    def prepare(self, tokens: list[int], reuse: bool) -> int:
        """Make the context hold exactly ``tokens`` with fresh logits for the last one.

        Returns how many of them were reused instead of evaluated. At least one token is always
        evaluated, because restored or truncated state has no logits for its last position.
        """
        llm = self.llm
        n = len(tokens)
        if not reuse:
            self.reset()
            self._eval(tokens)
            return 0
        limit = max(0, n - _MIN_BATCH)
        live_len = llm.n_tokens
        live = min(_common_prefix(llm.input_ids[:live_len].tolist(), tokens), limit)
        key, usable = self.states.best(tokens)
        usable = min(usable, limit)
        held = live_len
        if key is not None and usable > live and self._restore(key, self.states.get(key)):
            live, held = usable, len(key)
        if live < held and not self._truncate(live):
            self.reset()
            live = held = 0
        # A branching point inside a shared prefix: the part before it is what prompt families
        # share (instructions, choices), so keep a snapshot of exactly that.
        if _MIN_SNAPSHOT_TOKENS <= live < held and live < limit:
            prefix = tuple(tokens[:live])
            if prefix not in self.states:
                self.states.put(prefix, self._snapshot())
        llm.n_tokens = live
        self._eval(tokens[live:])
        if live < _MIN_SNAPSHOT_TOKENS and n >= _MIN_SNAPSHOT_TOKENS:
            # First prompt of a family as far as we know: its later siblings find their shared
            # prefix in this snapshot even if other families ran in between.
            self.states.put(tuple(tokens), self._snapshot())
        return live

    def _eval(self, tokens: Sequence[int]) -> None:
        """Llama.eval in chunks of at most n_batch, none of them a lone token (see _MIN_BATCH)."""
        i = 0
        while i < len(tokens):
            size = min(self.n_batch, len(tokens) - i)
            if len(tokens) - i - size == 1:
                size -= 1
            self.llm.eval(tokens[i : i + size])
            i += size

    def last_logprobs(self) -> np.ndarray:
        ptr = llama_cpp.llama_get_logits_ith(self.llm.ctx, -1)
        return _log_softmax(np.ctypeslib.as_array(ptr, shape=(self.llm.n_vocab(),)))

    def _decode_all(self, tokens: Sequence[int], n_past: int) -> list[np.ndarray]:
        """Decode ``tokens`` after position ``n_past``; log-probabilities after each of them."""
        rows: list[np.ndarray] = []
        vocab_n = self.llm.n_vocab()
        b = self._batch
        start = 0
        while start < len(tokens):
            size = min(self.n_batch, len(tokens) - start)
            if len(tokens) - start - size == 1:
                size -= 1  # never leave a lone token for the last chunk (_MIN_BATCH)
            chunk = tokens[start : start + size]
            b.n_tokens = len(chunk)
            for i, t in enumerate(chunk):
                b.token[i] = t
                b.pos[i] = n_past + start + i
                b.n_seq_id[i] = 1
                b.seq_id[i][0] = 0
                b.logits[i] = True
            rc = llama_cpp.llama_decode(self.llm.ctx, b)
            if rc != 0:
                raise LLMError(f"llama_decode failed with code {rc} while scoring choices")
            for i in range(len(chunk)):
                ptr = llama_cpp.llama_get_logits_ith(self.llm.ctx, i)
                rows.append(_log_softmax(np.ctypeslib.as_array(ptr, shape=(vocab_n,))))
            start += size
        return rows

    def score_continuations(
        self, prompt: Sequence[int], seqs: list[list[int]], prune: bool = False
    ) -> tuple[list[float], int]:
        """Sum log-probability of each token sequence as a continuation of the prompt in context.

        The prompt (already evaluated, logits fresh) is never re-evaluated. Sequences are visited
        best first token first, so sequences sharing leading tokens are adjacent and their shared
        part is decoded once. With ``prune`` a sequence whose known leading part already scores
        below the best complete sequence is skipped (-inf): log-probabilities only decrease as
        tokens are added, so the best sequence is still exact. Returns (scores, tokens decoded).
        """
        n_prompt = len(prompt)
        first = self.last_logprobs()
        path: list[int] = []
        rows: list[np.ndarray] = [first]  # rows[j]: distribution of continuation token j
        scores = [float("-inf")] * len(seqs)
        best = float("-inf")
        decoded = 0
        order = sorted(range(len(seqs)), key=lambda i: (-first[seqs[i][0]], seqs[i]))
        try:
            for idx in order:
                seq = seqs[idx]
                body = seq[:-1]  # the last token is only scored, never needs decoding
                keep = _common_prefix(path, body)
                if prune and sum(rows[j][seq[j]] for j in range(keep + 1)) <= best:
                    continue
                if keep < len(path):
                    if not llama_cpp.llama_memory_seq_rm(self._memory(), 0, n_prompt + keep, -1):
                        raise LLMError("this model cannot drop part of its KV cache; likelihood choice needs it")
                    del path[keep:]
                    del rows[keep + 1 :]
                new = body[keep:]
                if new:
                    # Back off one token so the decode is never a lone token (_MIN_BATCH); the
                    # extra row repeats one we have and is dropped.
                    lead = path[-1:] if path else [prompt[-1]]
                    start = n_prompt + keep - 1
                    if len(new) == 1 and start >= 0:
                        if not llama_cpp.llama_memory_seq_rm(self._memory(), 0, start, -1):
                            raise LLMError("this model cannot drop part of its KV cache; likelihood choice needs it")
                        rows += self._decode_all(lead + new, start)[1:]
                        decoded += 1
                    else:
                        rows += self._decode_all(new, n_prompt + keep)
                    path += new
                    decoded += len(new)
                scores[idx] = float(sum(rows[j][t] for j, t in enumerate(seq)))
                best = max(best, scores[idx])
        except BaseException:
            # The KV may have lost the prompt's last token mid back-off: start clean next time.
            self.reset()
            raise
        llama_cpp.llama_memory_seq_rm(self._memory(), 0, n_prompt, -1)
        self.llm.n_tokens = n_prompt
        self.llm._requires_eval = True
        return scores, decoded

    def is_eog(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))

    def _closing_bias(self) -> Any:
        """Logit bias towards tokens made only of JSON closers (quote, bracket, brace, space)."""
        if self._closers is None:
            ids = []
            for t in range(self.llm.n_vocab()):
                piece = self.llm.detokenize([t])
                if piece and piece.strip(b'"]} ') == b"" and piece.strip(b" "):
                    ids.append(t)
            arr = (llama_cpp.llama_logit_bias * len(ids))()
            for j, t in enumerate(ids):
                arr[j].token = t
                arr[j].bias = 50.0
            self._closers = (len(ids), arr)
        return self._closers

    def _sampler(self, p: SamplingParams, gbnf: str | None, closing: bool) -> Any:
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        if closing:
            n, arr = self._closing_bias()
            llama_cpp.llama_sampler_chain_add(
                chain, llama_cpp.llama_sampler_init_logit_bias(self.llm.n_vocab(), n, arr)
            )
        if gbnf is not None:
            llama_cpp.llama_sampler_chain_add(
                chain, llama_cpp.llama_sampler_init_grammar(self.vocab, gbnf.encode("utf-8"), b"root")
            )
        if p.temperature <= 0:
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
        else:
            if p.top_p < 1.0:
                llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_top_p(p.top_p, 1))
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_temp(p.temperature))
            seed = p.seed if p.seed is not None else llama_cpp.LLAMA_DEFAULT_SEED
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_dist(seed))
        return chain

    def sample(
        self, p: SamplingParams, gbnf: str | None, max_new: int, reserve: int, stops: Sequence[str]
    ) -> tuple[list[int], bool, str]:
        """Sample up to ``max_new`` tokens after the prepared prompt.

        In the last ``reserve`` tokens the chain is rebuilt with a bias towards closing tokens
        (the grammar state is replayed), so a JSON answer that would run past the budget is
        closed instead of cut. Returns (tokens, ended by end-of-turn or stop, text).
        """
        chain = self._sampler(p, gbnf, closing=False)
        out: list[int] = []
        finished = False
        text = ""
        try:
            while len(out) < max_new:
                if reserve and len(out) == max_new - reserve:
                    llama_cpp.llama_sampler_free(chain)
                    chain = self._sampler(p, gbnf, closing=True)
                    for t in out:
                        llama_cpp.llama_sampler_accept(chain, t)
                tok = llama_cpp.llama_sampler_sample(chain, self.llm.ctx, -1)
                if self.is_eog(tok):
                    finished = True
                    break
                out.append(tok)
                if stops:
                    text = self.llm.detokenize(out).decode("utf-8", errors="replace")
                    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
                    if cut >= 0:
                        return out, True, text[:cut]
                if len(out) < max_new:
                    self.llm.eval([tok])
        finally:
            llama_cpp.llama_sampler_free(chain)
        return out, finished, self.llm.detokenize(out).decode("utf-8", errors="replace")

    def check_grammar(self, gbnf: str) -> None:
        """llama.cpp returns NULL for a grammar it cannot parse; adding NULL to a sampler chain
        crashes the process, so parse once here and turn a failure into an error message."""
        smpl = llama_cpp.llama_sampler_init_grammar(self.vocab, gbnf.encode("utf-8"), b"root")
        if not smpl:
            raise LLMError(f"llama.cpp rejected the output grammar: {_preview(gbnf)}")
        llama_cpp.llama_sampler_free(smpl)


_MODELS: dict[tuple[str, int, int], _LoadedModel] = {}
_MODELS_LOCK = threading.Lock()


def _load(path: str, n_ctx: int, n_threads: int, state_cache_bytes: int) -> _LoadedModel:
    key = (os.path.realpath(path), n_ctx, n_threads)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f"embedded model file not found: {path}; set llm.model_path to a .gguf file, or leave "
                    "it empty to use the bundled SmolLM2 (`make embedded`)"
                )
            model = _MODELS[key] = _LoadedModel(path, n_ctx, n_threads, state_cache_bytes)
        return model


# --------------------------------------------------------------------------- backend


class EmbeddedBackend:
    """:class:`~agentictagger.llm.types.Backend` on llama.cpp; see the module docstring.

    ``likelihood_norm``: how choices of different token lengths are compared in likelihood
    mode, "sum" (log-probability of the whole answer) or "mean" (per token).
    ``state_cache_bytes``: RAM for prefix snapshots (KV of SmolLM2-135M: ~23 KB per token).
    """

    def __init__(
        self,
        cfg: LLMConfig,
        *,
        likelihood_norm: LikelihoodNorm = "sum",
        state_cache_bytes: int = 256 << 20,
    ) -> None:
        if likelihood_norm not in ("sum", "mean"):
            raise ValueError(f"likelihood_norm must be 'sum' or 'mean', got {likelihood_norm!r}")
        self.cfg = cfg
        # A model alias (``smollm2-135m-instruct``, ``qwen2.5-coder-1.5b-instruct``) or a file path.
        self.path = (
            str(resolve_model(cfg.model_path)) if cfg.model_path and get_spec(cfg.model_path) else cfg.model_path
        ) or bundled_model_path()
        self.likelihood_norm = likelihood_norm
        self.prefix_reuse = bool(getattr(cfg, "prefix_reuse", True))
        self._state_cache_bytes = state_cache_bytes
        self._model: _LoadedModel | None = None

    @property
    def model(self) -> _LoadedModel:
        if self._model is None:
            self._model = _load(self.path, self.cfg.n_ctx, self.cfg.n_threads, self._state_cache_bytes)
        return self._model

    def identity(self) -> str:
        fp = self._model.fingerprint if self._model else _file_fingerprint(self.path)
        return f"embedded:{Path(self.path).name}:{fp}:ctx{self.cfg.n_ctx}:lp-{self.likelihood_norm}"

    # -- public API ---------------------------------------------------------

    def complete(self, request: ChatRequest) -> ChatResponse:
        t0 = time.perf_counter()
        c = request.constraint
        m = self.model
        with m.lock:
            prompt = m.prompt_tokens(request.messages)
            if request.choice_mode == "likelihood" and isinstance(c, ChoiceConstraint):
                # Pruning is exact only for the sum: a mean can still rise after a bad token.
                scores, usage = self._score(m, prompt, c.choices, prune=self.likelihood_norm == "sum")
                best = max(range(len(scores)), key=lambda i: self._key(scores[i]))
                text = parsed = c.choices[best]
            else:
                text, parsed, usage = self._generate(m, prompt, request)
        return ChatResponse(
            text=text,
            parsed=parsed,
            usage=usage,
            latency_s=time.perf_counter() - t0,
            model=self.identity(),
        )

    def score_choices(self, request: ChatRequest) -> tuple[list[ChoiceScore], TokenUsage]:
        """Every choice's log-probability (sum and per-token), none pruned; for analysis/benchmarks."""
        c = request.constraint
        if not isinstance(c, ChoiceConstraint):
            raise ValueError("score_choices needs a request with a ChoiceConstraint")
        m = self.model
        with m.lock:
            return self._score(m, m.prompt_tokens(request.messages), c.choices)

    def prompt_token_count(self, request: ChatRequest) -> int:
        m = self.model
        with m.lock:
            return len(m.prompt_tokens(request.messages))

    # -- internals ----------------------------------------------------------

    def _key(self, s: ChoiceScore) -> float:
        return s.mean_logprob if self.likelihood_norm == "mean" else s.logprob

    def _check_fits(self, m: _LoadedModel, n_prompt: int, need: int) -> None:
        if n_prompt + need > m.n_ctx:
            raise LLMError(
                f"the prompt has {n_prompt} tokens and the answer needs up to {need} more, but the "
                f"embedded model's context is {m.n_ctx} tokens: shorten the item text "
                "(catalog.max_text_chars) or the instructions, or raise llm.n_ctx"
            )

    def _score(
        self, m: _LoadedModel, prompt: list[int], choices: Sequence[str], prune: bool = False
    ) -> tuple[list[ChoiceScore], TokenUsage]:
        seqs = [m.text_tokens(ch) + [m.end_of_turn] for ch in choices]
        self._check_fits(m, len(prompt), max(len(s) for s in seqs))
        reused = m.prepare(prompt, self.prefix_reuse)
        sums, decoded = m.score_continuations(prompt, seqs, prune=prune)
        scores = [ChoiceScore(ch, lp, len(s)) for ch, lp, s in zip(choices, sums, seqs)]
        # completion_tokens: continuation tokens decoded to score the choices (the real cost).
        return scores, TokenUsage(len(prompt), decoded, reused)

    def _generate(
        self, m: _LoadedModel, prompt: list[int], request: ChatRequest
    ) -> tuple[str, Any, TokenUsage]:
        c = request.constraint
        p = request.params
        max_new = p.max_tokens
        reserve = 0
        if isinstance(c, ChoiceConstraint):
            longest = max(len(m.text_tokens(ch)) for ch in c.choices)
            self._check_fits(m, len(prompt), longest + 1)
            # A too-small budget would cut a choice in half; grammar-guided tokenization can
            # take more tokens than the canonical one, hence the slack.
            max_new = max(max_new, 2 * longest + 4)
            gbnf = choice_grammar(c.choices)
        elif isinstance(c, JsonSchemaConstraint):
            gbnf = json_schema_grammar(c.schema)
            # Small models loop inside open-ended arrays/strings; the last `reserve` tokens of the
            # budget favour closing tokens so the answer still parses (see _sample).
            reserve = max(8, min(32, max_new // 4))
        else:
            gbnf = None
        self._check_fits(m, len(prompt), 1)
        max_new = min(max_new, m.n_ctx - len(prompt))
        if gbnf is not None:
            m.check_grammar(gbnf)

        reused = m.prepare(prompt, self.prefix_reuse)
        stops = p.stop if c is None else ()
        out, finished, text = m.sample(p, gbnf, max_new, reserve, stops)
        usage = TokenUsage(len(prompt), len(out), reused)

        if isinstance(c, ChoiceConstraint):
            if text not in c.choices:
                raise InvalidAnswerError(
                    f"grammar-constrained answer {_preview(text)} is not one of the {len(c.choices)} choices "
                    f"(stopped after {len(out)} tokens{'' if finished else ', budget exhausted'})"
                )
            return text, text, usage
        if isinstance(c, JsonSchemaConstraint):
            try:
                value = json.loads(text)
                jsonschema.validate(value, c.schema)
            except (ValueError, jsonschema.ValidationError) as exc:
                hint = "" if finished else f"; the answer hit max_tokens={max_new}, raise it"
                raise InvalidAnswerError(
                    f"answer {_preview(text)} is not valid JSON for schema {c.name!r}: "
                    f"{str(exc).splitlines()[0]}{hint}"
                ) from exc
            return text, value, usage
        return text, None, usage
