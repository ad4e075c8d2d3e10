"""The distinct-context table: π, P, the support S and the entropy H of a corpus.

Notation follows the paper (``docs/paper.md`` §1.1): m distinct contexts x̄_j, a next-token
vocabulary of V tokens, π_j the share of the n training pairs whose context is x̄_j, P ∈ ℝ^{V×m}
with P_{zj} = p̂(z | x̄_j), the support S_j = {z : P_{zj} > 0} and the empirical entropy
H = −Σ_j π_j Σ_{z∈S_j} P_{zj} log P_{zj} (nats), the lower bound of the NTP loss.

P is stored sparse (CSR in context-major order: ``indptr`` (m+1), ``indices``, ``prob``), and
densified on demand in the paper's V × m orientation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ntpgeom.errors import UserError


@dataclass(frozen=True, eq=False)
class Table:
    """A distinct-context table (see module docstring).

    Attributes
    ----------
    contexts : list of str
        The m contexts, tokens joined by spaces (labels only).
    tokens : list of str
        The V next tokens; row z of P is ``tokens[z]``.
    input_tokens : list of str
        The vocabulary of context tokens; ``context_ids`` index it.
    context_ids : ndarray of int64, shape (m, context_length)
        Each context as ids into ``input_tokens`` (the transformer's input).
    indptr, indices, pair_count : ndarray of int64
        CSR of the (context, next token) counts: context j's next tokens are
        ``indices[indptr[j]:indptr[j+1]]`` (sorted) with counts ``pair_count[...]``.
    source : str
        Where the table came from (e.g. ``text:/path``, ``synthetic:grammar``).
    attrs : dict
        Further provenance carried into the store.
    context_label : ndarray of int64, shape (m, n_attributes), or None
        Ground-truth latent attributes of each context (the value index of each attribute, e.g.
        of the attribute toy of ``docs/semantics.md`` §6), when the data has them.
    attributes : list of str
        The names of ``context_label``'s columns (empty without labels).
    token_label : ndarray of int64, shape (V, levels), optional
        Ground-truth classes of the next tokens where the data has them (the hierarchy's
        ancestors, ``synthetic.hierarchy_table``): ``token_label[z, l]`` is token z's class at
        level l + 1 (level 1 = the root's children). None for text corpora.
    """

    contexts: list[str]
    tokens: list[str]
    input_tokens: list[str]
    context_ids: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    pair_count: np.ndarray
    source: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)
    context_label: np.ndarray | None = None
    attributes: list[str] = field(default_factory=list)
    token_label: np.ndarray | None = None

    def __post_init__(self) -> None:
        m = len(self.contexts)
        if self.token_label is not None and (self.token_label.ndim != 2
                                             or self.token_label.shape[0] != len(self.tokens)):
            raise ValueError("token_label must have shape (V, levels)")
        if self.indptr.shape != (m + 1,) or self.indptr[0] != 0:
            raise ValueError("indptr must have m+1 entries starting at 0")
        if self.indptr[-1] != len(self.indices) or len(self.indices) != len(self.pair_count):
            raise ValueError("indices and pair_count must have indptr[-1] entries")
        if self.context_ids.shape[0] != m:
            raise ValueError("context_ids must have one row per context")
        if m and (self.pair_count <= 0).any():
            raise ValueError("pair counts must be positive")
        if self.context_label is not None and self.context_label.shape != (m, len(
                self.attributes)):
            raise ValueError("context_label must be (m, len(attributes))")

    # -- sizes ---------------------------------------------------------------------------------
    @property
    def m(self) -> int:
        """Number of distinct contexts."""
        return len(self.contexts)

    @property
    def V(self) -> int:  # noqa: N802 (the paper's letter)
        """Size of the next-token vocabulary."""
        return len(self.tokens)

    @property
    def context_length(self) -> int:
        return int(self.context_ids.shape[1])

    @property
    def count(self) -> np.ndarray:
        """Occurrences of each context, shape (m,)."""
        return np.add.reduceat(self.pair_count, self.indptr[:-1]) if self.m else np.zeros(0, int)

    @property
    def n(self) -> int:
        """Number of (context, next token) training pairs."""
        return int(self.pair_count.sum())

    @property
    def pi(self) -> np.ndarray:
        """π̂_j, the share of pairs with context j, shape (m,)."""
        return self.count / self.n

    @property
    def prob(self) -> np.ndarray:
        """The nonzeros of P in CSR order, P_{zj} = count(j, z) / count(j)."""
        return self.pair_count / np.repeat(self.count, np.diff(self.indptr))

    @property
    def support_size(self) -> np.ndarray:
        """S_j = |𝒮_j|, shape (m,)."""
        return np.diff(self.indptr)

    @property
    def column(self) -> np.ndarray:
        """Context index of each CSR entry, shape (nnz,)."""
        return np.repeat(np.arange(self.m), self.support_size)

    @property
    def entropy(self) -> float:
        """H = −Σ_j π_j Σ_z P_zj log P_zj in nats: the infimum of the NTP loss on this table."""
        p = self.prob
        return float(-(self.pi[self.column] * p * np.log(p)).sum()) + 0.0  # no -0.0

    # -- dense views (paper orientation: V × m) -----------------------------------------------
    def P(self) -> np.ndarray:  # noqa: N802
        """Dense next-token probabilities, shape (V, m); column j sums to 1."""
        out = np.zeros((self.V, self.m))
        out[self.indices, self.column] = self.prob
        return out

    def S(self) -> np.ndarray:  # noqa: N802
        """Dense support indicator, shape (V, m), dtype bool."""
        out = np.zeros((self.V, self.m), dtype=bool)
        out[self.indices, self.column] = True
        return out

    def check_for_theory(self, where: str = "table") -> None:
        """Refuse tables the theory cannot use: empty, or every context with full support.

        The NTP-SVM needs at least one out-of-support token (S_j < V for some j).
        """
        if self.m == 0:
            raise UserError(f"{where}: no contexts were kept; relax the selection settings "
                            "(top_m, min_count, min_support/max_support)")
        if (self.support_size >= self.V).all():
            raise UserError(f"{where}: every context has full support (S_j = V = {self.V}); the "
                            "theory needs some out-of-support token: raise vocab_size or lower "
                            "max_support")

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_pairs(cls, contexts: list[tuple[str, ...]], pairs: dict[int, dict[str, int]] | None
                   = None, *, ctx_index: np.ndarray | None = None, next_tokens: list[str] |
                   None = None, next_index: np.ndarray | None = None,
                   counts: np.ndarray | None = None, source: str = "",
                   attrs: dict[str, Any] | None = None,
                   context_label: np.ndarray | None = None,
                   attributes: list[str] | None = None,
                   token_label: np.ndarray | None = None) -> Table:
        """Build a table from token-tuple contexts and (context, next token, count) triples.

        Either ``pairs`` ({context index: {next token: count}}) or the three arrays
        ``ctx_index``, ``next_index`` (into ``next_tokens``) and ``counts``. Tokens are ordered
        by string, contexts keep their given order; duplicate triples are summed.
        ``context_label`` (m, len(``attributes``)) are the contexts' latent attributes, if any.
        ``token_label`` (one row per entry of ``next_tokens``, array form only) follows the
        tokens into their sorted order.
        """
        if pairs is not None:
            next_tokens = sorted({z for d in pairs.values() for z in d})
            zid = {z: i for i, z in enumerate(next_tokens)}
            rows = [(j, zid[z], c) for j, d in pairs.items() for z, c in d.items()]
            ctx_index = np.array([r[0] for r in rows], dtype=np.int64)
            next_index = np.array([r[1] for r in rows], dtype=np.int64)
            counts = np.array([r[2] for r in rows], dtype=np.int64)
        assert next_tokens is not None and ctx_index is not None and next_index is not None
        assert counts is not None
        order = np.argsort(next_tokens, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        tokens = [next_tokens[i] for i in order]
        z = rank[next_index]
        m = len(contexts)
        key = ctx_index.astype(np.int64) * max(len(tokens), 1) + z
        ukey, inv = np.unique(key, return_inverse=True)
        cnt = np.bincount(inv, weights=counts, minlength=len(ukey)).astype(np.int64)
        keep = cnt > 0
        ukey, cnt = ukey[keep], cnt[keep]
        col = ukey // max(len(tokens), 1)
        indptr = np.zeros(m + 1, dtype=np.int64)
        np.cumsum(np.bincount(col, minlength=m), out=indptr[1:])
        input_tokens = sorted({t for c in contexts for t in c})
        tid = {t: i for i, t in enumerate(input_tokens)}
        k = len(contexts[0]) if contexts else 0
        context_ids = np.array([[tid[t] for t in c] for c in contexts], dtype=np.int64)
        return cls(contexts=[" ".join(c) for c in contexts], tokens=tokens,
                   input_tokens=input_tokens, context_ids=context_ids.reshape(m, k),
                   indptr=indptr, indices=ukey % max(len(tokens), 1), pair_count=cnt,
                   source=source, attrs=dict(attrs or {}),
                   context_label=None if context_label is None else
                   np.asarray(context_label, dtype=np.int64),
                   attributes=list(attributes or []),
                   token_label=(None if token_label is None else
                                np.asarray(token_label, dtype=np.int64)[order]))

    # -- xarray / zarr -------------------------------------------------------------------------
    def to_dataset(self, config: dict[str, Any] | None = None, *, wall_seconds: float | None =
                   None):
        """The table as the ``table.zarr`` dataset of ``docs/artifacts.md``."""
        import xarray as xr

        from ntpgeom.store import provenance

        obj = np.dtype(object)
        ds = xr.Dataset(
            {
                "count": ("context", self.count, {"long_name": "occurrences of the context",
                                                  "units": "pairs"}),
                "pi": ("context", self.pi, {"long_name": "π̂_j, share of training pairs",
                                            "units": "1"}),
                "indptr": ("context_ptr", self.indptr,
                           {"long_name": "CSR row pointer of P (context-major)"}),
                "indices": ("nnz", self.indices, {"long_name": "next-token index of each entry"}),
                "prob": ("nnz", self.prob, {"long_name": "P_zj = p̂(z | context j)",
                                            "units": "1"}),
                "pair_count": ("nnz", self.pair_count, {"long_name": "count of (context, token)",
                                                        "units": "pairs"}),
                "context_ids": (("context", "position"), self.context_ids,
                                {"long_name": "context token ids into input_token"}),
            },
            coords={
                "context": ("context", np.array(self.contexts, dtype=obj)),
                "token": ("token", np.array(self.tokens, dtype=obj)),
                "input_token": ("input_token", np.array(self.input_tokens, dtype=obj)),
            },
        )
        if self.context_label is not None:
            ds["context_label"] = (("context", "attribute"), self.context_label,
                                   {"long_name": "value index of each latent attribute",
                                    "units": "1"})
            ds = ds.assign_coords(attribute=("attribute", np.array(self.attributes, dtype=obj)))
        if self.token_label is not None:
            ds["token_label"] = (("token", "level"), self.token_label,
                                 {"long_name": "ground-truth class of the token at each level "
                                  "(the hierarchy's ancestor)", "units": "class id"})
            ds = ds.assign_coords(level=("level", np.arange(1, self.token_label.shape[1] + 1)))
        ds.attrs = provenance(config, wall_seconds=wall_seconds, n=self.n, m=self.m, V=self.V,
                              entropy=self.entropy, entropy_units="nats",
                              context_length=self.context_length, source=self.source,
                              **self.attrs)
        return ds

    @classmethod
    def from_dataset(cls, ds) -> Table:
        keys = {"n", "m", "V", "entropy", "entropy_units", "context_length", "source", "config",
                "ntpgeom_version", "wall_seconds"}
        return cls(contexts=[str(c) for c in ds["context"].values],
                   tokens=[str(t) for t in ds["token"].values],
                   input_tokens=[str(t) for t in ds["input_token"].values],
                   context_ids=np.asarray(ds["context_ids"].values, dtype=np.int64),
                   indptr=np.asarray(ds["indptr"].values, dtype=np.int64),
                   indices=np.asarray(ds["indices"].values, dtype=np.int64),
                   pair_count=np.asarray(ds["pair_count"].values, dtype=np.int64),
                   source=str(ds.attrs.get("source", "")),
                   attrs={k: v for k, v in ds.attrs.items() if k not in keys},
                   context_label=np.asarray(ds["context_label"].values, dtype=np.int64)
                   if "context_label" in ds else None,
                   attributes=[str(a) for a in ds["attribute"].values]
                   if "context_label" in ds else [],
                   token_label=(np.asarray(ds["token_label"].values, dtype=np.int64)
                                if "token_label" in ds.variables else None))

    def save(self, path: str | Path, config: dict[str, Any] | None = None, *,
             wall_seconds: float | None = None) -> Path:
        """Write ``table.zarr`` atomically (see :func:`ntpgeom.store.write_store`)."""
        from ntpgeom.store import write_store

        return write_store(self.to_dataset(config, wall_seconds=wall_seconds), path)


#: The table store's contract (docs/artifacts.md): variable → (dims, dtype kind).
TABLE_VARIABLES: dict[str, tuple[tuple[str, ...], str]] = {
    "count": (("context",), "i"), "pi": (("context",), "f"), "indptr": (("context_ptr",), "i"),
    "indices": (("nnz",), "i"), "prob": (("nnz",), "f"), "pair_count": (("nnz",), "i"),
    "context_ids": (("context", "position"), "i"), "context": (("context",), "s"),
    "token": (("token",), "s"), "input_token": (("input_token",), "s"),
}
#: Optional variables of the table store: checked like the contract's when present.
OPTIONAL_TABLE_VARIABLES: dict[str, tuple[tuple[str, ...], str]] = {
    "context_label": (("context", "attribute"), "i"), "attribute": (("attribute",), "s"),
}
#: Relative tolerance of the stored π and P against the counts they were computed from, and of
#: their sums to 1: float64 division and summation of up to ~10⁷ terms stay far below it.
_TOL = 1e-9


def _kind(dtype: np.dtype) -> str:
    if dtype.kind in "iu":
        return "i"
    if dtype.kind == "f":
        return "f"
    return "s" if dtype.kind in "OUT" else dtype.kind


def validate_dataset(ds, where: str | Path) -> None:
    """Check a ``table.zarr`` dataset against the contract and for internal consistency.

    Every contract variable with its dims and dtype; ``indptr`` from 0, strictly increasing (each
    context has a next token) and ending at nnz; ``indices`` in [0, V) and increasing within each
    context; counts positive and ``count`` the sum of its ``pair_count``; π and P finite, positive,
    equal to the counts' shares and summing to 1; ``context_ids`` in the input vocabulary, one
    distinct row per context; labels non-empty and unique.

    Raises
    ------
    UserError
        Naming the store, the variable and what is wrong, with "rebuild it".
    """
    def bad(name: str, why: str) -> UserError:
        return UserError(f"{where}: variable {name} {why}; not a valid table store: rebuild it")

    optional = {k: v for k, v in OPTIONAL_TABLE_VARIABLES.items()
                if "context_label" in ds.variables}
    for name, (dims, kind) in {**TABLE_VARIABLES, **optional}.items():
        if name not in ds.variables:
            raise bad(name, "is missing")
        var = ds[name]
        if tuple(var.dims) != dims:
            raise bad(name, f"has dims {tuple(var.dims)}, expected {dims}")
        if _kind(var.dtype) != kind:
            raise bad(name, f"has dtype {var.dtype}, expected "
                      f"{ {'i': 'integer', 'f': 'float', 's': 'string'}[kind]}")
    v = {name: np.asarray(ds[name].values) for name in TABLE_VARIABLES}
    m, V, nnz = len(v["context"]), len(v["token"]), len(v["indices"])
    indptr, indices, pair_count = v["indptr"], v["indices"], v["pair_count"]
    if len(indptr) != m + 1:
        raise bad("indptr", f"has {len(indptr)} entries for m = {m} contexts (expected m + 1)")
    if m and (indptr[0] != 0 or (np.diff(indptr) < 1).any() or indptr[-1] != nnz):
        raise bad("indptr", f"is not increasing from 0 to nnz = {nnz}")
    if len(v["prob"]) != nnz or len(pair_count) != nnz:
        raise bad("prob", f"and pair_count must have nnz = {nnz} entries")
    if nnz and (indices.min() < 0 or indices.max() >= V):
        raise bad("indices", f"has entries outside [0, V = {V})")
    step = np.diff(indices)
    if m and (step[np.setdiff1d(np.arange(nnz - 1), indptr[1:-1] - 1)] <= 0).any():
        raise bad("indices", "is not strictly increasing within each context")
    for name in ("pi", "prob"):
        if not (np.isfinite(v[name]).all() and (v[name] > 0).all()):
            raise bad(name, "has non-finite or non-positive entries")
    if (pair_count <= 0).any():
        raise bad("pair_count", "has non-positive entries")
    count = np.add.reduceat(pair_count, indptr[:-1]) if m else np.zeros(0, np.int64)
    if not np.array_equal(v["count"], count):
        raise bad("count", "is not the sum of each context's pair_count")
    for name, expected in (("pi", count / max(count.sum(), 1)),
                           ("prob", pair_count / np.repeat(count, np.diff(indptr)))):
        if not np.allclose(v[name], expected, rtol=_TOL, atol=0):
            raise bad(name, "does not match the counts")
    sums = np.add.reduceat(v["prob"], indptr[:-1]) if m else np.ones(0)
    if abs(v["pi"].sum() - 1) > _TOL * max(m, 1) or (np.abs(sums - 1) > _TOL).any():
        raise bad("pi" if abs(v["pi"].sum() - 1) > _TOL * max(m, 1) else "prob",
                  "does not sum to 1")
    ids = v["context_ids"]
    if len(ids) != m:
        raise bad("context_ids", f"has {len(ids)} rows for m = {m} contexts")
    if ids.size and (ids.min() < 0 or ids.max() >= len(v["input_token"])):
        raise bad("context_ids", f"has ids outside the {len(v['input_token'])} input tokens")
    if m and ids.shape[1] and len(np.unique(ids, axis=0)) != m:
        raise bad("context_ids", "has two equal contexts")
    if optional:
        label = np.asarray(ds["context_label"].values)
        if label.size and label.min() < 0:
            raise bad("context_label", "has negative value indices")
    for name in ("context", "token", "input_token", *(["attribute"] if optional else [])):
        labels = [str(x) for x in v.get(name, ds[name].values)]
        if any(not x for x in labels):
            raise bad(name, "has empty labels")
        if name != "context" and len(set(labels)) != len(labels):
            raise bad(name, "has repeated labels")
    if "token_label" in ds.variables:  # optional: ground truth of synthetic data only
        lab = ds["token_label"]
        if tuple(lab.dims) != ("token", "level") or _kind(lab.dtype) != "i":
            raise bad("token_label", f"has dims {tuple(lab.dims)} and dtype {lab.dtype}, "
                      "expected integer ('token', 'level')")
        if lab.size and np.asarray(lab.values).min() < 0:
            raise bad("token_label", "has negative class ids")
    for key, value in (("m", m), ("V", V), ("context_length", ids.shape[1] if ids.ndim == 2
                                             else None)):
        if key in ds.attrs and ds.attrs[key] != value:
            raise UserError(f"{where}: attr {key} is {ds.attrs[key]!r} but the store holds "
                            f"{value}; not a valid table store: rebuild it")


def load(path: str | Path) -> Table:
    """Read a ``table.zarr`` store into a :class:`Table`, validated (:func:`validate_dataset`).

    Raises
    ------
    UserError
        If the store is missing, damaged (a chunk lost or undecodable) or inconsistent.
    """
    from ntpgeom.store import open_store

    ds = open_store(path)
    validate_dataset(ds, path)
    return Table.from_dataset(ds)
