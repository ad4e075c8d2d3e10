"""The Table type: derived quantities against hand computations, and the zarr round trip."""

import numpy as np
import pytest
import xarray as xr

from ntpgeom.data.synthetic import grammar_corpus, ksubset_table, random_table
from ntpgeom.data.table import Table, load
from ntpgeom.errors import UserError


def small_table() -> Table:
    # context 0 ("a b") → x ×3, y ×1; context 1 ("b c") → y ×2.
    pairs = {0: {"x": 3, "y": 1}, 1: {"y": 2}}
    return Table.from_pairs([("a", "b"), ("b", "c")], pairs, source="hand")


def test_derived_quantities_by_hand():
    t = small_table()
    assert (t.m, t.V, t.n) == (2, 2, 6)
    np.testing.assert_array_equal(t.count, [4, 2])
    np.testing.assert_allclose(t.pi, [4 / 6, 2 / 6], rtol=0, atol=1e-15)
    # P is V × m (tokens × contexts), columns are distributions.
    np.testing.assert_allclose(t.P(), [[0.75, 0.0], [0.25, 1.0]], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(t.S(), [[True, False], [True, True]])
    h = -(4 / 6) * (0.75 * np.log(0.75) + 0.25 * np.log(0.25))  # context 1 is deterministic
    assert t.entropy == pytest.approx(h, rel=1e-14)
    np.testing.assert_array_equal(t.context_ids, [[0, 1], [1, 2]])  # ids into a, b, c
    assert t.input_tokens == ["a", "b", "c"]


def test_duplicate_pairs_are_summed():
    t = Table.from_pairs([("a",)], ctx_index=np.array([0, 0]), next_tokens=["x"],
                         next_index=np.array([0, 0]), counts=np.array([2, 3]))
    np.testing.assert_array_equal(t.pair_count, [5])


def test_zarr_round_trip_is_exact(tmp_path):
    t = random_table(V=15, m=40, seed=3)
    path = t.save(tmp_path / "table.zarr", {"k": 1}, wall_seconds=0.5)
    back = load(path)
    for name in ("indptr", "indices", "pair_count", "context_ids"):
        np.testing.assert_array_equal(getattr(back, name), getattr(t, name))
    assert (back.contexts, back.tokens, back.input_tokens) == (t.contexts, t.tokens,
                                                              t.input_tokens)
    assert back.entropy == t.entropy
    ds = xr.open_zarr(path, consolidated=False)
    assert ds["prob"].dims == ("nnz",) and ds["context_ids"].dims == ("context", "position")
    assert ds["indptr"].sizes["context_ptr"] == t.m + 1
    for key in ("n", "m", "V", "entropy", "context_length", "source", "config",
                "ntpgeom_version", "wall_seconds"):
        assert key in ds.attrs
    # CSR → dense P agrees with the stored probabilities.
    P = np.zeros((t.V, t.m))
    for j in range(t.m):
        lo, hi = ds["indptr"].values[j], ds["indptr"].values[j + 1]
        P[ds["indices"].values[lo:hi], j] = ds["prob"].values[lo:hi]
    np.testing.assert_array_equal(P, t.P())


def test_write_leaves_no_temporary_and_replaces_atomically(tmp_path):
    t = small_table()
    t.save(tmp_path / "t.zarr")
    t.save(tmp_path / "t.zarr")  # replace
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.zarr"]


def test_ksubset_table_is_every_subset():
    t = ksubset_table(V=6, k=2)
    S = t.S()
    assert t.m == 15 and t.V == 6
    assert (S.sum(axis=0) == 2).all()
    assert len({tuple(np.flatnonzero(S[:, j])) for j in range(t.m)}) == 15
    # the context reads its own tokens
    assert all(t.contexts[j].split() == [t.tokens[i] for i in np.flatnonzero(S[:, j])]
               for j in range(t.m))


def test_grammar_corpus_shape():
    docs = grammar_corpus(n_contexts=16, support_size=3, n_sentences=500, seed=1)
    assert len(docs) == 500 and all(len(d.split()) == 6 for d in docs)
    assert len({" ".join(d.split()[:5]) for d in docs}) == 16
    assert docs == grammar_corpus(n_contexts=16, support_size=3, n_sentences=500, seed=1)


def test_theory_check_refuses_full_support_and_empty():
    full = Table.from_pairs([("a",)], {0: {"x": 1, "y": 1}})
    with pytest.raises(UserError, match="every context has full support"):
        full.check_for_theory()
    empty = Table.from_pairs([], ctx_index=np.zeros(0, int), next_tokens=[],
                             next_index=np.zeros(0, int), counts=np.zeros(0, int))
    with pytest.raises(UserError, match="no contexts were kept"):
        empty.check_for_theory()
