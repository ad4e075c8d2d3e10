"""The one-hot regime (semantics.md §6): the attribute toy's table, and its metrics against
closed forms."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import xarray as xr

from ntpgeom.data.build import make_table
from ntpgeom.data.synthetic import attribute_table
from ntpgeom.data.table import load
from ntpgeom.errors import UserError


def test_attribute_table_is_one_hot_with_its_attributes():
    t = make_table({"source": "synthetic", "synthetic": {"kind": "attributes",
                                                         "attribute_sizes": [3, 4]}}, {})
    assert (t.m, t.V, t.context_length) == (12, 12, 2)
    # k = 1 and the token order is the context order: S = I, balanced π, entropy 0.
    np.testing.assert_array_equal(t.S(), np.eye(12, dtype=bool))
    np.testing.assert_array_equal(t.pi, np.full(12, 1 / 12))
    assert t.entropy == 0.0
    assert t.attributes == ["colour", "shape"]
    np.testing.assert_array_equal(t.context_label, list(itertools.product(range(3), range(4))))
    # The context's words are its attribute values: context j is read from its labels.
    assert t.contexts[0] == "red circle" and t.contexts[5] == "blue square"
    # Contexts sharing an attribute share an input token, and only those.
    for i, j in itertools.combinations(range(12), 2):
        shares = (t.context_label[i] == t.context_label[j]).any()
        assert shares == bool(set(t.context_ids[i]) & set(t.context_ids[j]))


def test_context_label_round_trips_and_is_validated(tmp_path):
    t = attribute_table([2, 2, 3])
    back = load(t.save(tmp_path / "table.zarr"))
    np.testing.assert_array_equal(back.context_label, t.context_label)
    assert back.attributes == ["colour", "shape", "size"]
    ds = xr.open_zarr(tmp_path / "table.zarr", consolidated=False)
    assert ds["context_label"].dims == ("context", "attribute")
    # A table without labels has none (optional variable).
    from ntpgeom.data.synthetic import ksubset_table
    plain = load(ksubset_table(5, 1).save(tmp_path / "plain.zarr"))
    assert plain.context_label is None and plain.attributes == []
    # A corrupted label is refused in one line naming the variable.
    from ntpgeom.data.table import validate_dataset
    bad = ds.load().copy()
    bad["context_label"] = bad["context_label"] * 0 - 1
    with pytest.raises(UserError, match="context_label"):
        validate_dataset(bad, "t.zarr")
    with pytest.raises(UserError, match="context_label.*dims"):
        validate_dataset(bad.assign(context_label=(("attribute", "context"),
                                                   ds["context_label"].values.T)), "t.zarr")


@pytest.mark.parametrize("sizes", [[1, 4], [9], [2, 2, 2, 2, 2]])
def test_bad_attribute_sizes_are_user_errors(sizes):
    with pytest.raises(UserError, match="synthetic.attribute_sizes"):
        attribute_table(sizes)
