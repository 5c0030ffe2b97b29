"""The LLM build path end to end with the real embedded model (SmolLM2-135M-Instruct) on a
200-item Beauty sample: architect and annotator are LLM calls through llama.cpp. This shows
the mechanics (valid vocabulary, validation, fallback, cache), not quality: a 135M model is far
too weak for these roles (see bench/RESULTS.md).

    .venv/bin/python bench/build_llm_embedded.py     # writes bench/results/build_llm_embedded.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _build_common import REPO, print_table, run_build, summarise, write

from agentictagger.structures.vocabulary import Vocabulary

p = argparse.ArgumentParser()
p.add_argument("--items", type=int, default=200)
p.add_argument("--run-dir", default=str(REPO / "runs" / "beauty200_llm"))
p.add_argument("--resume", action="store_true")
a = p.parse_args()
sets = [
    f"build.subsample={a.items}",
    "seed=0",
    "build.architect.kind=llm",
    "build.annotator.kind=llm",
    "build.annotator.output=choice",
    "build.max_depth=2",
    "build.root_descriptors=8",
    "build.child_descriptors=4",
    "build.architect.max_tokens=400",
    "llms.default.backend=embedded",
    "llms.default.max_concurrency=1",
]
run_dir = Path(a.run_dir)
wall = run_build(run_dir, "shared:beauty", sets, fresh=not a.resume)
res = summarise(run_dir, wall, "python bench/build_llm_embedded.py")
vocab = Vocabulary.load(run_dir / "vocabulary.json")
res["dataset"] = f"Amazon 2014 Beauty, random sample of {a.items} items (seed 0), titles only"
res["agents"] = "architect and annotator: SmolLM2-135M-Instruct Q4_1 via llama.cpp (embedded backend), annotator chooses by likelihood"
res["valid_vocabulary"] = all(vocab.is_valid_path([d.id for d in vocab.path_to(x.id)]) for x in vocab)
res["fallback_steps"] = sum(1 for line in (run_dir / "build_log.jsonl").read_text().splitlines() if '"fallback": true' in line)
print_table(res)
print("valid vocabulary:", res["valid_vocabulary"], "| steps where the offline architect stood in:", res["fallback_steps"])
write(res, "build_llm_embedded.json")
