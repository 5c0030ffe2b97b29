"""How the local llama.cpp server is asked for one of a list of options, measured on one question.

The LLM judge, the LLM annotators and the LLM assigners all ask the model to pick one option (a
descriptor name, or 'none'). On the local backend the answer is held to the options by a grammar.
Two ways of writing that grammar, same model, same prompts, same items:

* ``json_wrapped``: the answer is a JSON object ``{"choice": <one of the options>}`` under
  llama.cpp's compact JSON grammar, with a line in the prompt asking for that object and listing
  the options again (how the backend asked before);
* ``bare_options``: a grammar whose language is exactly the options, no JSON, no second list (how
  it asks now).

The question is the LLM judge's (``vocab.quality.llm_name_agreement``): Qwen2.5-Coder-1.5B reads an
item and the 15 level-1 names and definitions of the offline build of
``bench/taxonomy_alignment.py`` (seed 0) and picks one; agreement = the share of items given their
assigned descriptor. Beside it, on the same items, the embedding judge (the item's nearest name +
definition among the same 15). Scientific is the development catalog, Office is held out; nothing
was chosen on either (the bare grammar is the embedded backend's choice grammar; the probe that
found the problem read 40 Scientific items with the same prompt).

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/choice_decoding.py [--sample 50]

writes bench/results/choice_decoding.json and prints a short table. No response cache is used, so
both ways are decoded for real.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from _provenance import command_line, write_result  # noqa: E402
from taxonomy_alignment import LLM_THREADS, run_profile  # noqa: E402

from agentictagger.catalog import load_shared  # noqa: E402
from agentictagger.config import LLMConfig, RunConfig  # noqa: E402
from agentictagger.embed import Embedder  # noqa: E402
from agentictagger.llm.factory import make_client  # noqa: E402
from agentictagger.structures.assignment import Assignment  # noqa: E402
from agentictagger.structures.vocabulary import Vocabulary  # noqa: E402
from agentictagger.vocab.quality import llm_name_agreement, name_identifiability  # noqa: E402

WAYS = ("json_wrapped", "bare_options")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--catalogs", nargs="+", default=["scientific", "office"])
    ap.add_argument("--sample", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "choice_decoding.json"))
    args = ap.parse_args()
    cfg = LLMConfig(backend="local", model_path="qwen2.5-coder-1.5b-instruct", n_threads=LLM_THREADS)
    embedder = Embedder(RunConfig().embedding, cache_dir=str(REPO / ".cache" / "agentictagger"))
    res: dict = {"what": __doc__.split("\n\n")[0], "model": "qwen2.5-coder-1.5b-instruct (local llama.cpp server, greedy)",
                 "sample": args.sample, "seed": args.seed, "level": 1, "command": command_line(), "catalogs": {}}
    try:
        for name in args.catalogs:
            info = run_profile(name, "offline", args.seed, fresh=False, extra=[])
            run = REPO / info["run_dir"]
            catalog = load_shared(name)
            ids = catalog.ids
            vocab = Vocabulary.load(run / "vocabulary.json")
            assigned = Assignment.load_jsonl(run / "assignments.jsonl").paths
            paths = [list(assigned.get(i, [])) for i in ids]
            texts = [catalog.by_id(i).text for i in ids]
            entry: dict = {"role": "development" if name == "scientific" else "held out", "run": info["run_dir"]}
            for way in WAYS:
                client = make_client(cfg, None)  # no cache: both ways decoded for real
                if way == "json_wrapped":  # the backend without its bare-option grammar
                    client.backend._ensure().choice_grammar = None
                t0 = time.monotonic()
                r = llm_name_agreement(vocab, texts, paths, client, level=1, sample=args.sample, seed=args.seed)
                r["seconds"] = round(time.monotonic() - t0, 1)
                entry[way] = r
                print(f"{name:<11} {way:<13} agreement {r['agreement']:.3f}  distinct answers {r['distinct_answers']:>2}  "
                      f"most common answer {r['most_common_answer_share']:.2f}  {r['seconds']:.0f} s", flush=True)
            rows = entry[WAYS[0]]["items"]
            assert rows == entry[WAYS[1]]["items"]
            emb = np.asarray(embedder.encode([texts[i] for i in rows]), dtype=np.float32)
            entry["embedding_judge_same_items"] = name_identifiability(vocab, emb, [paths[i] for i in rows], embedder.encode, (1,))["1"]["accuracy"]
            print(f"{name:<11} {'embedding':<13} agreement {entry['embedding_judge_same_items']:.3f} (same items)", flush=True)
            res["catalogs"][name] = entry
    finally:
        from agentictagger.llm.backends import local

        local.shutdown_servers()
    write_result(args.out, res)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
