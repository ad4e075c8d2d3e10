"""Corpora and tables generated in code: no download, fully seeded.

- :func:`grammar_corpus`: text in the shape of the paper's synthetic dataset (``docs/paper.md``
  §2.1(a)): fixed five-word prefixes, each followed by a few possible next words; blocks of
  contexts share one support exactly (so that subspace collapse shows) and the others overlap.
  It goes through the same table builder as real text.
- :func:`ksubset_table`: every k-subset of V tokens is one context's support; the NTP-SVM
  solution is then S̄ = (I − 11ᵀ/V) S in closed form (§1.7), a built-in solver check.
- :func:`random_table`: random supports with Zipf-like token popularity (the baselines'
  ``rVxm`` problems, ``../shared/reference/problems.py``), for tests and benchmarks; with a fixed
  support size and n pairs, the NeurIPS paper's linear-model data (App. A).
- :func:`attribute_table`: the one-hot regime (``docs/semantics.md`` §6): every combination of
  latent attributes (colour × shape …) is a context made of its attribute tokens, with a next
  token of its own, so k = 1, S = I and L^mm = S̄ = I − 11ᵀ/m, whose context geometry is the
  simplex ETF (``docs/paper.md`` §1.7); the attributes are kept as the table's
  ``context_label``.
- :func:`hierarchy_table`: words are the leaves of a balanced tree, one context per node whose
  support is the leaves below it (``docs/semantics.md`` §4.2–4.3, the Saxe-style items ×
  properties data); the table carries each word's ancestors as ground truth (``token_label``).
"""

from __future__ import annotations

import itertools

import numpy as np

from ntpgeom.data.table import Table
from ntpgeom.errors import UserError

#: Five-word prefixes in the spirit of the paper's ``verysmallset.txt`` (no apostrophes, so each
#: word is one token of the word tokenizer).
PREFIXES = [
    "lily wants to try the", "lily wants to eat the", "tim wants to try the",
    "tim wants to see the", "lily was playing with her", "tim was playing with his",
    "the little girl was so", "the little boy was so", "lily needs help because she",
    "tim needs help because he", "mom said they could see", "they went to the big",
    "one day lily found a", "one day tim found a", "the dog ran to the", "the cat ran to the",
]

#: Next words; the first six form the paper's "cheat list": frequent words drawn first for half
#: of the contexts, so that their supports overlap or coincide.
NEXT_WORDS = [
    "cake", "ball", "park", "happy", "dog", "box",
    "cookies", "swing", "soup", "game", "bike", "dress", "pizza", "guitar", "movie", "doll",
    "kite", "tree", "toy", "book", "hat", "excited", "tired", "sad", "stuck", "lost", "scared",
    "sleepy", "hungry", "brave", "garden", "river", "car", "bird", "flower", "boat", "apple",
    "shoe", "lamp", "star",
]


def grammar_supports(n_contexts: int = 16, support_size: int = 3, n_words: int = 30,
                     groups: int = 4, group_size: int = 2,
                     rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """The support (indices into the next-word pool) of each context of :func:`grammar_corpus`.

    Contexts ``0 … groups·group_size − 1`` form ``groups`` blocks of ``group_size`` consecutive
    contexts (consecutive prefixes are near-synonyms, as the paper's synonym-expanded groups);
    every context of a block has the same support, drawn from the six-word cheat list. The other
    contexts get supports of their own: even ones from the cheat list (so they overlap the blocks'
    and each other's), odd ones from the whole pool. All supports other than a block's shared
    one are distinct, so the identical-support groups are exactly the blocks (paper §2.1(a):
    frequent labels are taken first, so supports overlap or coincide).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    cheat = min(6, n_words)
    supports: list[np.ndarray] = []
    seen: set[tuple[int, ...]] = set()

    def fresh(pool: int, what: str) -> np.ndarray:
        # Rejection sampling: the pools are small, so a few hundred draws find a new subset
        # whenever one is likely to exist; otherwise the configuration asks for too many.
        for _ in range(1000):
            s = np.sort(rng.choice(pool, size=support_size, replace=False))
            if tuple(s) not in seen:
                seen.add(tuple(s))
                return s
        raise UserError(f"synthetic: could not draw a distinct support for {what} "
                        f"({support_size} of {pool} words); lower synthetic.groups, "
                        "n_contexts or support_size, or raise n_words")

    for g in range(groups):
        shared = fresh(cheat, f"group {g}")
        supports += [shared] * group_size
    for j in range(groups * group_size, n_contexts):
        supports.append(fresh(cheat if j % 2 == 0 else n_words, f"context {j}"))
    return supports


def grammar_corpus(n_contexts: int = 16, support_size: int = 3, n_words: int = 30,
                   n_sentences: int = 3000, seed: int = 0, groups: int = 4,
                   group_size: int = 2) -> list[str]:
    """Sentences "<prefix> <next word>", one per document.

    The supports are :func:`grammar_supports`: ``groups`` blocks of ``group_size`` contexts with
    identical supports (subspace collapse, paper §3 claim 6), the rest overlapping. Sentences
    pick a context with probability ∝ a random weight and a next word with probability ∝ a random
    repeat count in {1, 2} (the synthetic set's ``randint(1, 3)``, paper §2.1(a)), drawn per
    context: the contexts of a block share the support, not the probabilities.
    """
    if not 1 <= n_contexts <= len(PREFIXES):
        raise UserError(f"synthetic.n_contexts must be between 1 and {len(PREFIXES)}; "
                        f"got {n_contexts}")
    if not 2 <= n_words <= len(NEXT_WORDS):
        raise UserError(f"synthetic.n_words must be between 2 and {len(NEXT_WORDS)}; "
                        f"got {n_words}")
    if not 1 <= support_size < min(n_words, 6):
        raise UserError("synthetic.support_size must be at least 1 and below both n_words and "
                        f"6 (the cheat list); got {support_size}")
    if groups < 0 or (groups and group_size < 2) or groups * group_size > n_contexts:
        raise UserError(f"synthetic.groups × group_size = {groups} × {group_size} must fit in "
                        f"n_contexts = {n_contexts}, with group_size ≥ 2; lower groups or "
                        "group_size")
    rng = np.random.default_rng(seed)
    words = NEXT_WORDS[:n_words]
    supports = grammar_supports(n_contexts, support_size, n_words, groups, group_size, rng)
    weights = [rng.integers(1, 3, size=support_size).astype(float) for _ in range(n_contexts)]
    ctx_p = rng.uniform(0.5, 1.5, size=n_contexts)
    ctx = rng.choice(n_contexts, size=n_sentences, p=ctx_p / ctx_p.sum())
    docs = []
    for j in ctx:
        z = rng.choice(supports[j], p=weights[j] / weights[j].sum())
        docs.append(f"{PREFIXES[j]} {words[z]}")
    return docs


def ksubset_table(V: int, k: int, seed: int = 0) -> Table:  # noqa: N803
    """Every k-subset of V tokens ``t0 … t{V-1}`` as a support, counts randint(1, 5) per pair.

    Context j's input is its own k tokens (so the transformer can read it), named like
    ``"t0 t3"``.
    """
    if not 1 <= k < V:
        raise UserError(f"synthetic: ksubset needs 1 <= k < V; got V={V}, k={k}")
    subsets = list(itertools.combinations(range(V), k))
    if len(subsets) > 2_000_000:
        raise UserError(f"synthetic: C({V},{k}) = {len(subsets)} contexts is too many; lower V "
                        "or k")
    rng = np.random.default_rng(seed)
    ctx = np.repeat(np.arange(len(subsets)), k)
    nxt = np.array(subsets, dtype=np.int64).reshape(-1)
    counts = rng.integers(1, 5, size=len(nxt))
    names = [f"t{i}" for i in range(V)]
    return Table.from_pairs([tuple(names[i] for i in s) for s in subsets], ctx_index=ctx,
                            next_tokens=names, next_index=nxt, counts=counts,
                            source=f"synthetic:ksubset(V={V},k={k})",
                            attrs={"closed_form": "S_bar"})


def random_table(V: int, m: int, max_support: int = 6, seed: int = 0,  # noqa: N803
                 zipf_a: float = 1.0, context_length: int = 3, *, support_size: int | None = None,
                 n: int | None = None) -> Table:
    """m contexts with random supports and random next-token probabilities.

    Supports: size uniform in 1..max_support (capped at V − 1), or exactly ``support_size`` for
    every context (the NeurIPS paper's App. A synthetic data, S_j = 6). Tokens are drawn without
    replacement with weights ∝ 1/rank^zipf_a (``zipf_a = 0``: uniformly), so with zipf_a > 0
    popular tokens are shared by many contexts and small supports repeat (as in ``baselines.md``'s
    rVxm problems). Counts: randint(1, 5) per pair; or, with ``n``, exactly n pairs: one per
    support entry plus n − Σ_j S_j drawn multinomially with random context weights π and random
    in-support probabilities (both uniform on the simplex), so that supports stay exact. Contexts
    are random token tuples of ``context_length``, distinct.
    """
    if support_size is not None and not 1 <= support_size < V:
        raise UserError(f"synthetic.support_size: random supports need 1 <= support_size < V "
                        f"= {V}; got {support_size}")
    rng = np.random.default_rng(seed)
    w = 1.0 / np.arange(1, V + 1) ** zipf_a
    w /= w.sum()
    ctx, nxt = [], []
    for j in range(m):
        s = support_size or int(rng.integers(1, min(max_support, V - 1) + 1))
        z = rng.choice(V, size=s, replace=False, p=w)
        ctx += [j] * s
        nxt += list(z)
    names = [f"w{i}" for i in range(V)]
    # Distinct context tuples: the digits of j in base V, padded (V ≥ 2).
    digits = np.zeros((m, context_length), dtype=np.int64)
    rest = np.arange(m)
    for p in range(context_length - 1, -1, -1):
        digits[:, p] = rest % V
        rest //= V
    if (rest > 0).any():
        raise UserError(f"random_table: {m} contexts do not fit in {V}^{context_length} tuples")
    contexts = [tuple(names[i] for i in row) for row in digits]
    if n is None:
        counts = rng.integers(1, 5, size=len(nxt))
    else:
        if n < len(nxt):
            raise UserError(f"synthetic.n: {n} pairs cannot cover the {len(nxt)} support entries "
                            f"(one pair each); raise n to at least {len(nxt)}")
        col = np.array(ctx)
        pi = rng.dirichlet(np.ones(m))
        p = np.concatenate([rng.dirichlet(np.ones(int((col == j).sum()))) for j in range(m)])
        counts = 1 + rng.multinomial(n - len(nxt), pi[col] * p)
    source = f"synthetic:random(V={V},m={m},seed={seed}" + (
        f",S={support_size}" if support_size else "") + (f",n={n})" if n else ")")
    return Table.from_pairs(contexts, ctx_index=np.array(ctx), next_tokens=names,
                            next_index=np.array(nxt), counts=counts, source=source)


#: The attributes of :func:`attribute_table`, in order, with the words of their values.
ATTRIBUTES: list[tuple[str, list[str]]] = [
    ("colour", ["red", "blue", "green", "yellow", "purple", "orange", "black", "white"]),
    ("shape", ["circle", "square", "triangle", "star", "heart", "diamond", "cross", "moon"]),
    ("size", ["small", "large", "tiny", "huge", "short", "tall", "thin", "wide"]),
    ("texture", ["smooth", "rough", "soft", "hard", "shiny", "dull", "furry", "wet"]),
]


def attribute_table(attribute_sizes: list[int] | tuple[int, ...] = (4, 4)) -> Table:
    """Every combination of attribute values as a context, each with its own single next token.

    ``attribute_sizes[a]`` values of attribute a (colour, shape, size, texture: at most
    ``len(ATTRIBUTES)`` attributes of at most 8 values). Context j is the tuple of its value
    words (``"red circle"``): contexts that share a value share an input token, which is the only
    thing that can make their embeddings alike. Its next token is ``obj{j}`` (zero-padded, so the
    token order is the context order and S = I), seen once: one-hot and balanced, m = V = Π sizes,
    entropy 0. ``context_label[j, a]`` is the value index of attribute a in context j.
    """
    sizes = [int(s) for s in attribute_sizes]
    if not 1 <= len(sizes) <= len(ATTRIBUTES) or any(
            not 2 <= s <= len(ATTRIBUTES[a][1]) for a, s in enumerate(sizes)):
        raise UserError(f"synthetic.attribute_sizes: need 1 to {len(ATTRIBUTES)} attributes of 2 "
                        f"to 8 values each; got {sizes}")
    labels = np.array(list(itertools.product(*(range(s) for s in sizes))), dtype=np.int64)
    m = len(labels)
    contexts = [tuple(ATTRIBUTES[a][1][v] for a, v in enumerate(row)) for row in labels]
    width = len(str(m - 1))
    names = [f"obj{j:0{width}d}" for j in range(m)]
    return Table.from_pairs(contexts, ctx_index=np.arange(m), next_tokens=names,
                            next_index=np.arange(m), counts=np.ones(m, dtype=np.int64),
                            source=f"synthetic:attributes(sizes={sizes})",
                            attrs={"closed_form": "S_bar"}, context_label=labels,
                            attributes=[ATTRIBUTES[a][0] for a in range(len(sizes))])


#: The toy of ``docs/semantics.md`` §4.3 (depth 3, branching 2): leaf words and internal nodes in
#: breadth-first order (root, level 1, level 2).
TOY_WORDS = ["oak", "pine", "rose", "tulip", "dog", "cat", "trout", "shark"]
TOY_NODES = ["grows", "plant", "animal", "tree", "flower", "mammal", "fish"]
#: Largest tree generated (leaves): the table is V × (number of nodes).
MAX_LEAVES = 4096


def hierarchy_table(depth: int = 3, branching: int = 2, counts: str = "balanced",
                    zipf_a: float = 1.0, seed: int = 0) -> Table:
    """Words = the ``branching**depth`` leaves of a balanced tree; one context per node.

    Context "node" has as support the leaves below it: the root's is every word, a leaf's its
    own word, so m = Σ_{l=0}^{depth} branching^l. Each context is one input token (its node's
    name). ``counts``: ``balanced`` = every support pair once (n = Σ_j S_j, so the gradient at
    L = 0 is −S̄/n, semantics.md §2.1); ``zipf`` = pair (j, z) seen ⌈V / r_z^zipf_a⌉ times, with
    r_z a seeded random rank of word z (frequencies then change the early dynamics, M₀ ≠ S̄/n,
    but not the support). ``token_label[z, l-1]`` is the index (breadth-first within level l)
    of word z's ancestor at level l = 1 … depth (level depth: the word itself).

    Depth 3, branching 2 is the §4.3 toy with its names (oak … shark; grows, plant, animal,
    tree, flower, mammal, fish; leaf contexts ``is_<word>``); other trees use ``w<leaf>`` and
    ``n<level>_<index>``.
    """
    if depth < 1 or branching < 2:
        raise UserError(f"synthetic: hierarchy needs depth ≥ 1 and branching ≥ 2; got depth="
                        f"{depth}, branching={branching}")
    leaves = branching ** depth
    if leaves > MAX_LEAVES:
        raise UserError(f"synthetic: hierarchy with branching^depth = {leaves} words is too "
                        f"large (at most {MAX_LEAVES}); lower depth or branching")
    if counts not in ("balanced", "zipf"):
        raise UserError(f"synthetic.counts: unknown {counts!r}; choose balanced or zipf")
    if counts == "zipf" and not zipf_a > 0:
        raise UserError(f"synthetic.zipf_a: counts zipf needs zipf_a > 0 (0 would be balanced); "
                        f"got {zipf_a}")
    toy = (depth, branching) == (3, 2)
    words = TOY_WORDS if toy else [f"w{i}" for i in range(leaves)]
    contexts, ctx, nxt = [], [], []
    for level in range(depth + 1):
        width = leaves // branching ** level  # leaves below each node of this level
        for i in range(branching ** level):
            if level == depth:
                name = f"is_{words[i]}"
            elif toy:
                name = TOY_NODES[branching ** level - 1 + i]
            else:
                name = f"n{level}_{i}"
            below = range(i * width, (i + 1) * width)
            ctx += [len(contexts)] * width
            nxt += list(below)
            contexts.append((name,))
    ctx_a, nxt_a = np.array(ctx, dtype=np.int64), np.array(nxt, dtype=np.int64)
    if counts == "balanced":
        pair_counts = np.ones(len(nxt_a), dtype=np.int64)
    else:
        rank = np.random.default_rng(seed).permutation(leaves) + 1
        pair_counts = np.ceil(leaves / rank[nxt_a].astype(float) ** zipf_a).astype(np.int64)
    labels = np.stack([np.arange(leaves) // branching ** (depth - level)
                       for level in range(1, depth + 1)], axis=1)
    source = f"synthetic:hierarchy(depth={depth},branching={branching},counts={counts}" + (
        f",zipf_a={zipf_a:g},seed={seed})" if counts == "zipf" else ")")
    return Table.from_pairs(contexts, ctx_index=ctx_a, next_tokens=words, next_index=nxt_a,
                            counts=pair_counts, source=source, token_label=labels)
