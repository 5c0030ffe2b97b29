"""Full-softmax cross-entropy on CPU: the ranker's chunked CE vs ``F.cross_entropy(h @ W.T, t)``.

Forward + backward, 4,096 positions x 12,101 items (Beauty's catalogue), d 64, one thread, the
mean of 5 repeats after a warm-up; writes bench/results/chunked_ce.json.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_chunked_ce.py
"""

import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from agentictagger.recsys.ranking import softmax_cross_entropy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import write_result  # noqa: E402

torch.set_num_threads(1)
g = torch.Generator().manual_seed(0)
h = torch.randn(4096, 64, generator=g, requires_grad=True)
W = torch.randn(12101, 64, generator=g, requires_grad=True)
t = torch.randint(0, 12101, (4096,), generator=g)


def timed(fn) -> float:
    fn().backward()
    t0 = time.perf_counter()
    for _ in range(5):
        fn().backward()
    return (time.perf_counter() - t0) / 5


res = {"positions": 4096, "items": 12101, "d": 64, "threads": 1,
       "reference_s": round(timed(lambda: F.cross_entropy(h @ W.t(), t)), 3),
       "chunked_s": {str(c): round(timed(lambda c=c: softmax_cross_entropy(h, W, t, chunk=c)), 3) for c in (32, 64, 128, 256)}}
res["speedup_at_64"] = round(res["reference_s"] / res["chunked_s"]["64"], 2)
out = Path(__file__).resolve().parent / "results" / "chunked_ce.json"
write_result(out, res)
print(json.dumps(res))
