"""Streaming counts against a brute-force count, and the context selection rules."""

import re
from collections import Counter

import numpy as np
import pytest

from ntpgeom.data import corpus, ngrams
from ntpgeom.data.tokenize import WordTokenizer
from ntpgeom.errors import UserError

WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "big", "red", "Lily", "TIM",
         "don’t", "café", "x_1", "“hi”"]
PUNCT = [".", ",", "!", "?", "--"]


def random_docs(rng: np.random.Generator, n_docs: int, zipf: float = 1.3) -> list[str]:
    vocab = WORDS + PUNCT
    p = 1.0 / np.arange(1, len(vocab) + 1) ** zipf
    p /= p.sum()
    docs = []
    for _ in range(n_docs):
        n = int(rng.integers(0, 40))
        words = rng.choice(vocab, size=n, p=p)
        seps = rng.choice([" ", "  ", "\n", "\t", ""], size=n)
        docs.append("".join(w + s for w, s in zip(words, seps, strict=True)))
    return docs


def brute_force(docs: list[str], K: int) -> Counter:  # noqa: N803
    """(context tuple, next token) counts with the documented rule, document by document."""
    pairs: Counter = Counter()
    for d in docs:
        toks = re.findall(r"\w+|[^\w\s]", d.lower())
        for i in range(len(toks) - K):
            pairs[(tuple(toks[i:i + K]), toks[i + K])] += 1
    return pairs


def streamed(pc: ngrams.PairCounts, tok: WordTokenizer) -> Counter:
    out: Counter = Counter()
    for c, z, n in zip(pc.ctx, pc.nxt, pc.count, strict=True):
        out[(tuple(tok.strings(pc.context_ids[c])), tok.strings([z])[0])] += int(n)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("K", [1, 3])
def test_counts_equal_brute_force(seed, K):  # noqa: N803
    docs = random_docs(np.random.default_rng(seed), 300)
    tok = WordTokenizer()
    pc = ngrams.count_pairs(corpus.read_documents(docs), tok, context_length=K, progress=False)
    expected = brute_force(docs, K)
    assert streamed(pc, tok) == expected
    assert pc.corpus_pairs == sum(expected.values())
    assert not pc.pruned


def test_counts_across_chunk_boundaries(tmp_path):
    """Documents longer than a chunk: no window is lost or counted twice at a cut."""
    docs = random_docs(np.random.default_rng(7), 400)
    path = tmp_path / "c.txt"
    path.write_text("\n<|endoftext|>\n".join(docs), encoding="utf-8")
    tok = WordTokenizer()
    pc = ngrams.count_pairs(corpus.read_text(path, chunk_mb=0.001), tok, context_length=3,
                            progress=False)
    assert streamed(pc, tok) == brute_force(docs, 3)


def test_pruned_summary_keeps_exact_counts_of_heavy_hitters():
    """With a summary far smaller than the number of distinct contexts, the kept (frequent)
    contexts still have exact counts: pass 2 recounts them."""
    rng = np.random.default_rng(3)
    docs = random_docs(rng, 3000, zipf=1.1)
    expected = brute_force(docs, 3)
    ctx_total: Counter = Counter()
    for (c, _), n in expected.items():
        ctx_total[c] += n
    assert len(ctx_total) > 1000  # more distinct contexts than the summary holds
    tok = WordTokenizer()
    pc = ngrams.count_pairs(corpus.read_documents(docs), tok, context_length=3,
                            memory_mb=0.01, candidates=50, progress=False)
    assert pc.pruned
    got = streamed(pc, tok)
    top = {c for c, _ in ctx_total.most_common(20)}
    for (c, z), n in expected.items():
        if c in top:
            assert got[(c, z)] == n
    # every counted pair is exact, not just the top ones
    assert all(expected[key] == n for key, n in got.items())


def test_word_tokenizer_matches_the_documented_rule():
    rng = np.random.default_rng(0)
    alphabet = list("abcXYZ09_ .,!?'\"-\t\n") + ["é", "É", "“", "”", "’", "\u00a0", "—", "ß"]
    tok = WordTokenizer()
    for _ in range(200):
        text = "".join(rng.choice(alphabet, size=int(rng.integers(0, 30))))
        ids = tok.encode(text.encode("utf-8"))
        assert tok.strings(ids) == re.findall(r"\w+|[^\w\s]", text.lower()), text


def test_tokenizer_resumes_when_its_new_token_buffer_fills(monkeypatch):
    from ntpgeom.data.tokenize import _RawTable

    monkeypatch.setattr(_RawTable, "NEW_CAPACITY", 3)
    text = "a b c d e f g a b h i j k l m n o p “q” x_1"
    tok = WordTokenizer()
    assert tok.strings(tok.encode(text.encode())) == re.findall(r"\w+|[^\w\s]", text)


def select(docs, K=2, **kw):  # noqa: N803
    tok = WordTokenizer()
    pc = ngrams.count_pairs(corpus.read_documents(docs), tok, context_length=K, progress=False)
    return ngrams.select_table(pc, tok, **kw)


def test_selection_filters():
    docs = ["a b x"] * 5 + ["a b y"] * 1 + ["c d x"] * 2 + ["c d z"] * 2 + ["e f x"]
    t = select(docs)
    assert t.contexts == ["a b", "c d", "e f"]  # by count, then text
    t = select(docs, min_count=2)
    assert t.contexts == ["a b", "c d"]
    t = select(docs, min_pair_count=2)
    assert t.tokens == ["x", "z"] and t.support_size.tolist() == [1, 2]
    t = select(docs, min_support=2)
    assert t.contexts == ["a b", "c d"]
    t = select(docs, max_support=1)
    assert t.contexts == ["e f"]
    t = select(docs, top_m=1)
    assert t.contexts == ["a b"]
    # vocab cap: x (8) and z (2) are the most frequent next tokens
    t = select(docs, vocab_size=2)
    assert t.tokens == ["x", "z"] and t.count.tolist() == [5, 4, 1]
    t = select(docs, vocab_size=2, unk="map")
    assert t.tokens == ["<unk>", "x"]
    assert t.P()[:, t.contexts.index("c d")].tolist() == [0.5, 0.5]
    with pytest.raises(UserError, match="only 3 contexts pass the selection.*top_m=5"):
        select(docs, top_m=5)


def test_empty_corpus_is_a_user_error():
    with pytest.raises(UserError, match="no context of 5 tokens"):
        select(["", "too short"], K=5)
