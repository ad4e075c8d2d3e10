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
