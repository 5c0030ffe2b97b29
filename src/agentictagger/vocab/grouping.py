"""Grouping a job's items before they are named: a consensus of fine-then-merged clusterings.

The offline architect does not cut the embedding space straight into ``target`` pieces (that is
plain KMeans, the baseline). One *draw* over-clusters the job into fine, tight groups (KMeans with
several groups per descriptor) and merges them bottom-up (Ward linkage on the fine centroids) into
``target`` groups. One draw depends on its random start, so ``consensus_groups`` makes
``restarts`` draws and clusters the items by *how the draws grouped them* (KMeans on the
concatenated one-hot group memberships, i.e. on co-association): items that most draws put
together end up together. ``bench/taxonomy_alignment.py`` measures the result against KMeans and
BERTopic on the same embeddings, including seed-to-seed agreement.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Iterator

import numpy as np
from sklearn.cluster import AgglomerativeClustering, KMeans, kmeans_plusplus

from agentictagger.embed import normalise


@contextmanager
def single_threaded_numerics() -> Iterator[None]:
    """BLAS and OpenMP limited to one thread while grouping: parallelism comes from jobs and draws
    running side by side. A threaded KMeans on cores shared with other work spins and waits (an
    ad-hoc timing on 2 shared cores was about 10x slower than single-threaded; no committed
    benchmark)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


_RUNNING_JOBS = 0
_RUNNING_LOCK = threading.Lock()


@contextmanager
def job_running() -> Iterator[None]:
    """Marks one build job as running (the builder wraps each job in it), so that
    :func:`draw_workers` gives a job's draws only the cores the other running jobs leave."""
    global _RUNNING_JOBS
    with _RUNNING_LOCK:
        _RUNNING_JOBS += 1
    try:
        yield
    finally:
        with _RUNNING_LOCK:
            _RUNNING_JOBS -= 1


def draw_workers(n_draws: int) -> int:
    """Threads for a job's draws: every core when the job runs alone (the root, the last jobs),
    one when as many jobs run as there are cores. Two jobs on 2 cores, each drawing on 2 threads,
    kept 4 threads busy on 2 cores: with this and the definitions' first trials encoded in one
    call (``keyphrases.separating_examples``), first offline builds of Beauty took 130.4 +- 4.3 s
    against 138.4 +- 6.0 s for the source without both (revision 4aeb2aa), interleaved in one run
    of ``bench/build_speed.py --baseline-rev`` (``build_speed.json``)."""
    with _RUNNING_LOCK:
        running = max(1, _RUNNING_JOBS)
    return max(1, min(n_draws, (os.cpu_count() or 1) // running))


def n_fine_clusters(n_items: int, target: int, per_group: int, min_size: int) -> int:
    """How many fine clusters: ``per_group`` per descriptor, but none smaller than ``min_size``
    items on average, and never fewer than ``target``."""
    return int(max(min(target, n_items), min(target * per_group, n_items // max(1, min_size))))


def _centred64(emb: np.ndarray) -> np.ndarray:
    """The vectors minus their mean, in float64: what k-means++ seeds on (see fine_clusters)."""
    return np.asarray(emb - emb.mean(axis=0), dtype=np.float64)


def fine_clusters(emb: np.ndarray, m: int, seed: int, centred: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """KMeans fine clusters: (labels, unit centroids). Empty clusters cannot occur with KMeans++.

    The k-means++ seeding runs on float64 vectors (centred, as ``KMeans.fit`` would; ``centred``:
    those vectors when the caller has them, so a job's draws centre them once), then Lloyd on the
    float32 ones. scikit-learn seeds float32 input through its chunked upcasting distance path,
    which took most of an offline build's time in a py-spy profile of the Beauty build; seeding in
    float64 was faster in an ad-hoc timing (not a committed benchmark). The chosen seeds
    can differ from float32 seeding (rounding), so partitions are those of a different draw."""
    m = max(1, min(m, len(emb)))
    _, first = kmeans_plusplus(centred if centred is not None else _centred64(emb), m, random_state=seed)
    km = KMeans(n_clusters=m, init=emb[first], n_init=1, random_state=seed).fit(emb)
    labels = km.labels_.astype(np.int64)
    # Each cluster's rows in catalog order, as a mask would pick them (so the same means, bit for
    # bit), from one stable sort instead of a pass over all labels per cluster.
    order = np.argsort(labels, kind="stable")
    counts = np.bincount(labels, minlength=m)
    ends = np.cumsum(counts)
    cent = np.stack([emb[order[e - c : e]].mean(axis=0) if c else km.cluster_centers_[k] for k, (c, e) in enumerate(zip(counts, ends))])
    return labels, normalise(cent)


def ward_merge(vectors: np.ndarray, k: int) -> np.ndarray:
    """Ward agglomeration of ``vectors`` (one per fine cluster, each weighing the same) into ``k``
    groups: scikit-learn's ``AgglomerativeClustering`` (size-weighted Ward scored lower on the
    Scientific development half, so fine clusters are not weighted by their sizes)."""
    m = len(vectors)
    k = max(1, min(k, m))
    if k == m:
        return np.arange(m, dtype=np.int64)
    return AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(np.asarray(vectors, dtype=np.float64)).astype(np.int64)


def draw(emb: np.ndarray, m: int, target: int, seed: int, centred: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One fine clustering merged into ``target`` groups: (group per item, fine cluster per item).

    Every fine cluster weighs the same in the merge (size-weighted Ward scored lower on the
    Scientific development half)."""
    fine, cent = fine_clusters(emb, m, seed, centred)
    groups = ward_merge(cent, target)[fine] if len(cent) > target else fine
    return groups, fine


def consensus_groups(emb: np.ndarray, m: int, target: int, seed: int, restarts: int) -> tuple[np.ndarray, np.ndarray]:
    """Consensus of ``restarts`` draws: (group per item, largest first; fine clusters of draw 0).

    Items are clustered (KMeans, 10 inits) on their concatenated one-hot memberships in the draws'
    groups; the squared distance between two items there is twice the number of draws that split
    them, so this is a centroid clustering of the co-association matrix without building the
    n x n matrix (average linkage on the co-association made one giant group). On the Scientific
    development half, 15 groups, 12 seeds (``bench/tune_grouping.py``): 16 fine clusters per group
    and 20 draws (the defaults of the root job; sub-jobs draw ``build.grouping.sub_job_restarts``
    times) give NMI .559 / ARI .434 against .508 / .363 for KMeans (n_init 10);
    8 per group .548 / .421; 10 draws score below 20.
    """
    n = len(emb)
    target = max(1, min(target, n))
    # The draws are independent: run them on the cores other jobs leave (draw_workers), one
    # BLAS/OpenMP thread each (see single_threaded_numerics); sklearn releases the GIL inside KMeans.
    seeds = [seed + 7919 * r for r in range(max(1, restarts))]
    workers = draw_workers(len(seeds))
    centred = _centred64(emb)
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="draw") as pool:
            draws = list(pool.map(lambda s: draw(emb, m, target, s, centred), seeds))
    else:
        draws = [draw(emb, m, target, s, centred) for s in seeds]
    if len(draws) == 1 or target == 1:
        return order_by_size(draws[0][0]), draws[0][1]
    onehot = np.concatenate([np.eye(int(g.max()) + 1, dtype=np.float32)[g] for g, _ in draws], axis=1)
    labels = KMeans(n_clusters=target, random_state=seed, n_init=10).fit(onehot).labels_
    return order_by_size(labels.astype(np.int64)), draws[0][1]


def order_by_size(labels: np.ndarray) -> np.ndarray:
    """Relabel groups 0..k-1, largest first (ties by first appearance), so output is stable."""
    uniq, counts = np.unique(labels, return_counts=True)
    first = {u: int(np.argmax(labels == u)) for u in uniq}
    order = sorted(uniq.tolist(), key=lambda u: (-counts[list(uniq).index(u)], first[u]))
    remap = {u: i for i, u in enumerate(order)}
    return np.array([remap[u] for u in labels.tolist()], dtype=np.int64)
