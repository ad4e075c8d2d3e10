"""Streaming (context → next token) counts in bounded memory, and the selection of contexts.

Two passes, memory bounded by ``memory_mb`` whatever the corpus size:

1. Tokenize each chunk, append its ids to a temporary file (4 bytes a token, on disk), and fold
   the chunk's context keys into a Misra–Gries heavy-hitter summary of at most ``capacity`` keys.
   Any context seen more than n/capacity times survives (Misra & Gries 1982; the weighted merge
   of Agarwal et al. 2013, "Mergeable summaries").
2. Read the ids back and count exactly, for the candidate contexts only (the most frequent of the
   summary), every (context, next token) pair. Counts of kept contexts are therefore exact.

A context is identified by a 64-bit polynomial hash of its token ids; a second, independent hash
is checked in pass 2, so a collision (probability ~ c²/2¹²⁸) is detected instead of merging two
contexts silently.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ntpgeom.data.table import Table
from ntpgeom.data.tokenize import BOUNDARY, Tokenizer
from ntpgeom.errors import UserError

log = logging.getLogger(__name__)

_C1 = np.uint64(0x9E3779B97F4A7C15)  # odd multipliers: the hashes are bijective per step
_C2 = np.uint64(0xC2B2AE3D27D4EB4F)
#: Bytes of memory per summary entry, merge temporaries included (measured: ~80).
_BYTES_PER_KEY = 100
_READ_IDS = 1 << 22  # ids per block in pass 2 (16 MB)


@dataclass
class PairCounts:
    """Exact counts of (candidate context, next token) pairs from :func:`count_pairs`."""

    context_ids: np.ndarray  # (c, K) token ids of each candidate context
    ctx: np.ndarray          # (p,) candidate index of each pair
    nxt: np.ndarray          # (p,) next-token id of each pair
    count: np.ndarray        # (p,) occurrences of the pair
    corpus_bytes: int
    corpus_pairs: int        # every (context, next token) window of the corpus
    pruned: bool             # whether the heavy-hitter summary ever dropped a context


def _window_keys(a: np.ndarray, K: int, mult: np.uint64) -> np.ndarray:  # noqa: N803
    """Polynomial hash of every K-window of ``a`` (length len(a) − K, the last has no next)."""
    n = len(a) - K
    au = a.astype(np.uint64)
    key = au[:n].copy()
    for k in range(1, K):
        key *= mult
        key += au[k:k + n]
    return key


def _keys_at(a: np.ndarray, starts: np.ndarray, K: int, mult: np.uint64) -> np.ndarray:  # noqa: N803
    """The same hash as :func:`_window_keys`, only for the windows starting at ``starts``."""
    key = a[starts].astype(np.uint64)
    for k in range(1, K):
        key *= mult
        key += a[starts + k].astype(np.uint64)
    return key


def _valid_windows(a: np.ndarray, K: int) -> np.ndarray:  # noqa: N803
    """Start positions whose K context tokens and next token contain no document boundary."""
    cs = np.zeros(len(a) + 1, dtype=np.int64)
    np.cumsum(a == BOUNDARY, out=cs[1:])
    n = len(a) - K
    return np.flatnonzero(cs[K + 1:K + 1 + n] == cs[:n])


def _merge_counts(keys: np.ndarray, counts: np.ndarray, new_keys: np.ndarray,
                  new_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum two sorted (key, count) lists into one."""
    if not len(keys):
        return new_keys, new_counts
    allk = np.concatenate([keys, new_keys])
    order = np.argsort(allk, kind="stable")
    allk = allk[order]
    first = np.flatnonzero(np.r_[True, allk[1:] != allk[:-1]])
    return allk[first], np.add.reduceat(np.concatenate([counts, new_counts])[order], first)


_CACHE_PREFIX = "ntpgeom-ids-"


def sweep_stale_caches(root: str | os.PathLike | None = None) -> list[Path]:
    """Remove token-id caches of builds that were killed (SIGKILL leaves no chance to clean up).

    A cache is ``{tmp}/ntpgeom-ids-{pid}-*``; it is stale when its process is gone. SIGINT and
    SIGTERM remove their own cache on the way out (``TemporaryDirectory``).
    """
    from ntpgeom.store import pid_alive

    removed = []
    for cache in Path(root or tempfile.gettempdir()).glob(f"{_CACHE_PREFIX}*"):
        pid = cache.name.removeprefix(_CACHE_PREFIX).split("-")[0]
        if cache.is_dir() and pid.isdigit() and int(pid) != os.getpid() and \
                not pid_alive(int(pid)):
            shutil.rmtree(cache, ignore_errors=True)
            removed.append(cache)
            log.info("removed %s, the token-id cache of a killed build", cache)
    return removed


def count_pairs(chunks: Iterable[tuple[bytes, int]], tokenizer: Tokenizer, *,
                context_length: int, memory_mb: int = 512, candidates: int | None = None,
                min_count: int = 1, total_bytes: int | None = None,
                progress: bool = True) -> PairCounts:
    """Count (context, next token) pairs of a chunk stream (see module docstring).

    Parameters
    ----------
    chunks : iterable of (bytes, int)
        Documents separated by ``b"\\x00"`` and the number of source bytes each chunk stands for
        (from :mod:`ntpgeom.data.corpus`).
    tokenizer : Tokenizer
        Turns a chunk into ids (:mod:`ntpgeom.data.tokenize`).
    context_length : int
        K, tokens per context.
    memory_mb : int
        Budget of the heavy-hitter summary; capacity = memory_mb · 10⁶ / 100 contexts.
    candidates : int, optional
        How many of the most frequent contexts are recounted exactly (default: all that may
        reach ``min_count``).
    min_count : int
        Contexts whose count cannot reach it are not recounted.
    """
    K = context_length  # noqa: N806
    capacity = max(int(memory_mb * 1e6 / _BYTES_PER_KEY), 1000)
    keys = np.zeros(0, dtype=np.uint64)
    counts = np.zeros(0, dtype=np.int64)
    decrement = 0  # total subtracted by Misra–Gries pruning: true ≤ estimate + decrement
    tail = np.full(K, BOUNDARY, dtype=np.int32)
    corpus_bytes = corpus_pairs = n_ids = 0
    start = time.perf_counter()
    sweep_stale_caches()
    with tempfile.TemporaryDirectory(prefix=f"{_CACHE_PREFIX}{os.getpid()}-") as tmp:
        ids_path = Path(tmp) / "ids.int32"
        with open(ids_path, "wb") as sink, tqdm(
                total=total_bytes, unit="B", unit_scale=True, desc="count contexts",
                disable=not progress, mininterval=0.5) as bar:
            for chunk, nbytes in chunks:
                ids = tokenizer.encode(chunk)
                ids.tofile(sink)
                n_ids += len(ids)
                a = np.concatenate([tail, ids])
                tail = a[-K:]
                valid = _valid_windows(a, K)
                corpus_pairs += len(valid)
                uk, uc = np.unique(_window_keys(a, K, _C1)[valid], return_counts=True)
                keys, counts = _merge_counts(keys, counts, uk, uc)
                if len(keys) > capacity:
                    cut = np.partition(counts, len(counts) - capacity - 1)[
                        len(counts) - capacity - 1]
                    decrement += int(cut)
                    counts = counts - cut
                    keep = counts > 0
                    keys, counts = keys[keep], counts[keep]
                corpus_bytes += nbytes
                bar.update(nbytes)
                bar.set_postfix(pairs_per_s=f"{corpus_pairs / (time.perf_counter() - start):.3g}")
        if corpus_pairs == 0:
            raise UserError(f"the corpus has no context of {K} tokens followed by a next token "
                            f"({corpus_bytes} bytes read); give a non-empty corpus or lower "
                            "table.context_length")
        # Candidates: contexts that can reach min_count, the most frequent first.
        possible = np.flatnonzero(counts + decrement >= min_count)
        order = possible[np.argsort(-counts[possible], kind="stable")]
        if candidates is not None:
            order = order[:candidates]
        cand = np.sort(keys[order])
        log.info("pass 1: %d bytes, %d pairs, %d distinct contexts kept (capacity %d, pruned %s);"
                 " %d candidates", corpus_bytes, corpus_pairs, len(keys), capacity,
                 decrement > 0, len(cand))
        pairs = _recount(ids_path, n_ids, cand, K, progress)
    ctx_keys, key2, context_ids, packed, pair_counts = pairs
    del ctx_keys, key2
    return PairCounts(context_ids=context_ids, ctx=(packed >> 32).astype(np.int64),
                      nxt=(packed & 0xFFFFFFFF).astype(np.int64), count=pair_counts,
                      corpus_bytes=corpus_bytes, corpus_pairs=corpus_pairs,
                      pruned=decrement > 0)


def _recount(ids_path: Path, n_ids: int, cand: np.ndarray, K: int, progress: bool):  # noqa: N803
    """Pass 2: exact pair counts of the candidate contexts from the cached ids."""
    c = len(cand)
    bits = 22
    prefilter = np.zeros(1 << bits, dtype=bool)  # cheap rejection of non-candidates
    prefilter[(cand & np.uint64((1 << bits) - 1)).astype(np.int64)] = True
    key2 = np.zeros(c, dtype=np.uint64)
    seen = np.zeros(c, dtype=bool)
    context_ids = np.zeros((c, K), dtype=np.int64)
    packed = np.zeros(0, dtype=np.int64)
    pair_counts = np.zeros(0, dtype=np.int64)
    tail = np.full(K, BOUNDARY, dtype=np.int32)
    with open(ids_path, "rb") as src, tqdm(total=n_ids, unit="tok", unit_scale=True,
                                            desc="recount candidates", disable=not progress,
                                            mininterval=0.5) as bar:
        while True:
            block = np.fromfile(src, dtype=np.int32, count=_READ_IDS)
            if not len(block):
                break
            a = np.concatenate([tail, block])
            tail = a[-K:]
            valid = _valid_windows(a, K)
            k1 = _window_keys(a, K, _C1)[valid]
            hit = prefilter[(k1 & np.uint64((1 << bits) - 1)).astype(np.int64)]
            valid, k1 = valid[hit], k1[hit]
            idx = np.minimum(np.searchsorted(cand, k1), max(c - 1, 0))
            hit = cand[idx] == k1 if c else np.zeros(len(k1), dtype=bool)
            valid, idx = valid[hit], idx[hit]
            k2 = _keys_at(a, valid, K, _C2)
            first = ~seen[idx]
            if first.any():
                j, pos = np.unique(idx[first], return_index=True)
                key2[j] = k2[first][pos]
                rows = valid[first][pos]
                context_ids[j] = a[rows[:, None] + np.arange(K)]
                seen[j] = True
            if (key2[idx] != k2).any():
                raise RuntimeError("two contexts share a 64-bit hash; please report this corpus")
            nk = (idx.astype(np.int64) << 32) | a[valid + K].astype(np.int64)
            uk, uc = np.unique(nk, return_counts=True)
            packed, pair_counts = _merge_counts(packed, pair_counts, uk, uc)
            bar.update(len(block))
    return cand, key2, context_ids, packed, pair_counts


def select_table(pc: PairCounts, tokenizer: Tokenizer, *, top_m: int | None = None,
                 min_count: int = 1, min_pair_count: int = 1, min_support: int = 1,
                 max_support: int | None = None, vocab_size: int | None = None,
                 unk: str = "drop", source: str = "", attrs: dict | None = None) -> Table:
    """Choose the contexts to keep and build the :class:`Table` (filters in the schema's order).

    1. drop pairs seen fewer than ``min_pair_count`` times;
    2. drop contexts seen fewer than ``min_count`` times (over the remaining pairs);
    3. keep the ``vocab_size`` most frequent next tokens: the others' pairs are dropped, or with
       ``unk="map"`` merged into one ``<unk>`` token (which then takes one of the V places);
    4. keep contexts with ``min_support`` ≤ S_j ≤ ``max_support``;
    5. keep the ``top_m`` most frequent contexts (ties broken by the context's text).
    """
    ctx, nxt, cnt = pc.ctx, pc.nxt, pc.count
    keep = cnt >= min_pair_count
    ctx, nxt, cnt = ctx[keep], nxt[keep], cnt[keep]
    total = np.bincount(ctx, weights=cnt, minlength=len(pc.context_ids))
    keep = total[ctx] >= min_count
    ctx, nxt, cnt = ctx[keep], nxt[keep], cnt[keep]
    unk_id = -1
    if vocab_size is not None:
        tok_total = np.bincount(nxt, weights=cnt)
        tokens = np.flatnonzero(tok_total)
        ranked = tokens[np.lexsort((tokens, -tok_total[tokens]))]
        room = vocab_size - 1 if unk == "map" else vocab_size
        top = np.zeros(len(tok_total), dtype=bool)
        top[ranked[:room]] = True
        if unk == "map" and len(ranked) > room:
            nxt = np.where(top[nxt], nxt, unk_id)
        else:
            keep = top[nxt]
            ctx, nxt, cnt = ctx[keep], nxt[keep], cnt[keep]
    support = np.bincount(np.unique(ctx * (1 << 32) + (nxt + 1)) >> 32,
                          minlength=len(pc.context_ids))
    total = np.bincount(ctx, weights=cnt, minlength=len(pc.context_ids)).astype(np.int64)
    ok = (total > 0) & (support >= min_support)
    if max_support is not None:
        ok &= support <= max_support
    chosen = np.flatnonzero(ok)
    names = [" ".join(tokenizer.strings(pc.context_ids[j])) for j in chosen]
    order = sorted(range(len(chosen)), key=lambda i: (-total[chosen[i]], names[i]))
    if top_m is not None:
        if len(order) < top_m:
            raise UserError(
                f"only {len(order)} contexts pass the selection (min_count={min_count}, "
                f"min_pair_count={min_pair_count}, support in [{min_support}, {max_support}], "
                f"vocab_size={vocab_size}) but table.top_m={top_m}; lower top_m or relax the "
                "filters")
        order = order[:top_m]
    chosen = chosen[order]
    new_index = np.full(len(pc.context_ids), -1, dtype=np.int64)
    new_index[chosen] = np.arange(len(chosen))
    keep = new_index[ctx] >= 0
    ctx, nxt, cnt = new_index[ctx[keep]], nxt[keep], cnt[keep]
    token_ids, next_index = np.unique(nxt, return_inverse=True)
    next_tokens = ["<unk>" if t == unk_id else s for t, s in
                   zip(token_ids.tolist(), tokenizer.strings(np.maximum(token_ids, 0)),
                       strict=True)]
    contexts = [tuple(tokenizer.strings(pc.context_ids[j])) for j in chosen]
    table = Table.from_pairs(contexts, ctx_index=ctx, next_tokens=next_tokens,
                             next_index=next_index, counts=cnt, source=source,
                             attrs={"corpus_bytes": pc.corpus_bytes,
                                    "corpus_pairs": pc.corpus_pairs,
                                    "heavy_hitters_pruned": pc.pruned, **(attrs or {})})
    return table
