"""The synthetic grammar's support structure (paper §2.1(a)): blocks of identical supports,
the other supports distinct and overlapping, exactly as configured."""

from __future__ import annotations

import numpy as np
import pytest

from ntpgeom.data.build import make_table
from ntpgeom.data.synthetic import grammar_corpus, grammar_supports
from ntpgeom.errors import UserError
from ntpgeom.metrics.core import support_groups


def grammar_table(**spec):
    return make_table({"source": "synthetic", "synthetic": {"kind": "grammar", **spec}},
                      {"context_length": 5, "min_count": 2}, progress=False)


@pytest.mark.parametrize(("groups", "group_size"), [(4, 2), (2, 3), (0, 2), (1, 16)])
def test_supports_have_exactly_the_configured_blocks(groups, group_size):
    sup = grammar_supports(16, 3, 30, groups, group_size, np.random.default_rng(5))
    keys = [tuple(s) for s in sup]
    for g in range(groups):
        block = keys[g * group_size:(g + 1) * group_size]
        assert len(set(block)) == 1
    # Every other support (and each block's one) is distinct: the blocks are the only groups.
    assert len(set(keys)) == groups + 16 - groups * group_size
    assert all(len(s) == 3 and len(set(s)) == 3 for s in sup)


def test_default_grammar_table_has_four_pairs_of_identical_supports_and_overlaps():
    t = grammar_table()
    groups = support_groups(t.S())
    assert sorted(len(g) for g in groups) == [2, 2, 2, 2]
    # The blocks are consecutive prefixes (near-synonyms): each group is one block's two contexts.
    blocks = {frozenset(t.contexts[j] for j in g) for g in groups}
    from ntpgeom.data.synthetic import PREFIXES
    assert blocks == {frozenset(PREFIXES[2 * b:2 * b + 2]) for b in range(4)}
    S = t.S().astype(int)
    overlap = S.T @ S                      # shared next tokens of each pair of contexts
    np.fill_diagonal(overlap, 0)
    distinct = {tuple(c) for c in S.T}
    assert len(distinct) == 12             # 4 shared + 8 of their own
    # Supports overlap without coinciding: some pairs share 1 or 2 of their 3 tokens.
    assert ((overlap > 0) & (overlap < 3)).sum() > 0
    # The paper's synthetic entropy (H = 1.0166 nats with randint(1, 3) repeats) is this order.
    assert 0.9 < t.entropy < 1.2


def test_groups_option_changes_the_table():
    t = grammar_table(groups=2, group_size=3)
    assert sorted(len(g) for g in support_groups(t.S())) == [3, 3]
    assert support_groups(grammar_table(groups=0).S()) == []


@pytest.mark.parametrize(("spec", "match"), [
    ({"groups": 9, "group_size": 2}, "must fit in n_contexts"),
    ({"groups": 2, "group_size": 1}, "group_size ≥ 2"),
    ({"n_contexts": 16, "groups": 0, "support_size": 5, "n_words": 6}, "distinct support"),
])
def test_impossible_group_settings_are_user_errors(spec, match):
    with pytest.raises(UserError, match=match):
        grammar_corpus(n_sentences=10, **spec)


# -- hierarchy (docs/semantics.md §4.2–4.3) -------------------------------------------------------
def hierarchy(**spec):
    return make_table({"source": "synthetic", "synthetic": {"kind": "hierarchy", **spec}}, {},
                      progress=False)


def test_hierarchy_toy_is_the_specs_toy():
    from ntpgeom.theory.reference import centered_support

    t = hierarchy()
    assert (t.V, t.m, t.n) == (8, 15, 32)   # §4.3: V = 8, m = 15, n = 32
    S = t.S()
    # Supports: the root all 8 words, 2 of 4, 4 of 2, 8 of 1; each support pair once.
    assert sorted(S.sum(0)) == [1] * 8 + [2] * 4 + [4] * 2 + [8]
    assert (t.pair_count == 1).all()
    # S̄'s spectrum, §4.3: rank 7, σ = √7, √3 (×2), 1 (×4), closed form of the balanced tree.
    S_bar = centered_support(S)
    # Check 1: columns sum to 0, the full-support "grows" column is 0, rank V − 1 = 7.
    np.testing.assert_allclose(S_bar.sum(0), 0, atol=1e-12)
    assert not S_bar[:, t.contexts.index("grows")].any()
    sigma = np.linalg.svd(S_bar, compute_uv=False)
    np.testing.assert_allclose(sigma, [7 ** .5, 3 ** .5, 3 ** .5, 1, 1, 1, 1, 0], atol=1e-12)
    col = {c: S[:, j] for j, c in enumerate(t.contexts)}
    words = np.array(t.tokens)
    assert set(words[col["plant"]]) == {"oak", "pine", "rose", "tulip"}
    assert set(words[col["mammal"]]) == {"dog", "cat"}
    assert set(words[col["is_trout"]]) == {"trout"}


def test_hierarchy_labels_are_each_words_ancestors():
    t = hierarchy()
    lab = dict(zip(t.tokens, map(tuple, t.token_label), strict=True))
    # Level 1: plants | animals; level 2: tree, flower, mammal, fish; level 3: the word itself.
    assert lab["oak"][0] == lab["tulip"][0] != lab["dog"][0] == lab["shark"][0]
    assert lab["oak"][1] == lab["pine"][1] != lab["rose"][1]
    assert lab["trout"][1] == lab["shark"][1] != lab["cat"][1]
    assert len({v[2] for v in lab.values()}) == 8
    # Every level's classes are exactly the supports of that level's contexts.
    S = t.S()
    for level, first in ((1, 1), (2, 3), (3, 7)):
        for j in range(first, first + 2 ** level):
            z = np.flatnonzero(S[:, j])
            assert len(set(t.token_label[z, level - 1])) == 1


def test_hierarchy_generic_tree_and_zipf_counts():
    t = hierarchy(depth=2, branching=3)
    assert (t.V, t.m) == (9, 13)
    assert t.token_label.shape == (9, 2)
    z = hierarchy(counts="zipf", zipf_a=1.0, seed=3)
    assert z.S().tolist() == hierarchy().S().tolist()       # same supports, other counts
    assert len(set(z.pair_count.tolist())) > 1
    # ⌈V / rank^a⌉: the most frequent word (rank 1) is seen V = 8 times in each of its contexts.
    assert z.pair_count.max() == 8


@pytest.mark.parametrize(("spec", "match"), [
    ({"depth": 0}, "depth ≥ 1"), ({"branching": 1}, "branching ≥ 2"),
    ({"depth": 13, "branching": 2}, "too large"), ({"counts": "zipf", "zipf_a": 0}, "zipf_a > 0"),
])
def test_hierarchy_refuses_bad_settings(spec, match):
    with pytest.raises(UserError, match=match):
        hierarchy(**spec)


def test_hierarchy_labels_survive_the_store(tmp_path):
    from ntpgeom.data.table import load, validate_dataset

    t = hierarchy()
    t.save(tmp_path / "t.zarr")
    back = load(tmp_path / "t.zarr")
    np.testing.assert_array_equal(back.token_label, t.token_label)
    assert back.tokens == t.tokens
    # Optional: a table without labels stays valid and loads with None.
    plain = grammar_table()
    plain.save(tmp_path / "g.zarr")
    assert load(tmp_path / "g.zarr").token_label is None
    # A malformed label variable is refused in one line.
    from ntpgeom.store import open_store
    ds = open_store(tmp_path / "t.zarr").load()
    ds["token_label"] = ds["token_label"].astype(float)
    with pytest.raises(UserError, match="token_label"):
        validate_dataset(ds, "t.zarr")
