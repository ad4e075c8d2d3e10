"""Corpus → ``table.zarr``: the table stage, for Snakemake (:func:`build_table`) and the CLI.

``ntpgeom table CORPUS --context-length K [--top-m M] [--min-count C] --out X.zarr`` runs the same
builder by hand.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ntpgeom.config import from_section, to_section
from ntpgeom.data import corpus, ngrams, synthetic
from ntpgeom.data.table import Table
from ntpgeom.data.tokenize import make_tokenizer
from ntpgeom.errors import UserError
from ntpgeom.store import write_store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenizerConfig:
    """``table.tokenizer`` (schemas/table.schema.yaml documents each key)."""

    kind: str = "word"  # word = lowercase words and punctuation marks; huggingface = tokenizers
    path: str | None = None  # huggingface: a local tokenizer.json
    name: str | None = None  # huggingface: a hub id (downloads)


@dataclass(frozen=True)
class TableConfig:
    """The ``table`` section: how a corpus becomes a distinct-context table.

    The defaults stated here are the section's (the schema's ``default:``s document the same
    values; ``tests/test_config.py`` proves they agree); ``ntpgeom table``'s options read them.
    """

    context_length: int = 5  # tokens per context (the paper: 5)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    top_m: int | None = None  # keep the m most frequent contexts (None = all)
    min_count: int = 2  # drop contexts seen fewer times
    min_pair_count: int = 1  # drop pairs seen fewer times (the paper's freq_thres)
    min_support: int = 1  # drop contexts with fewer distinct next tokens
    max_support: int | None = None  # drop contexts with more (None = no bound)
    vocab_size: int | None = None  # keep the V most frequent next tokens (None = all)
    unk: str = "drop"  # tokens beyond vocab_size: drop their pairs, or map them to <unk>
    memory_mb: int = 512  # budget of the streaming counter
    candidates: int | None = None  # contexts recounted exactly (None = 64 × top_m, ≥ 4096)
    chunk_mb: float = 4  # text read per chunk

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = "table") -> TableConfig:
        """From a ``table`` section (missing keys take the defaults; unknown keys are refused)."""
        return from_section(cls, values, where)

    def to_dict(self) -> dict[str, Any]:
        return to_section(self)


def make_table(dataset: dict[str, Any], table: TableConfig | Mapping[str, Any], *,
               progress: bool = True) -> Table:
    """Build the table of one ``datasets:`` entry with the ``table`` section's settings."""
    opts = TableConfig.from_dict(table)
    source = dataset.get("source")
    if source == "synthetic":
        spec = dict(dataset["synthetic"])
        kind = spec.pop("kind")
        if kind == "ksubset":
            return synthetic.ksubset_table(spec.get("V", 6), spec.get("k", 2), spec.get("seed", 0))
        if kind == "random":
            return synthetic.random_table(
                spec.get("V", 10), spec.get("m", 50), seed=spec.get("seed", 0),
                zipf_a=spec.get("zipf_a", 0.0), support_size=spec.get("support_size"),
                max_support=spec.get("max_support", 6), n=spec.get("n"))
        if kind == "attributes":
            return synthetic.attribute_table(spec.get("attribute_sizes", [4, 4]))
        if kind == "hierarchy":
            return synthetic.hierarchy_table(
                spec.get("depth", 3), spec.get("branching", 2), spec.get("counts", "balanced"),
                zipf_a=spec.get("zipf_a", 1.0), seed=spec.get("seed", 0))
        if kind != "grammar":
            raise UserError(f"synthetic.kind: unknown generator {kind!r}; choose grammar, "
                            "ksubset, random, attributes or hierarchy")
        grammar = {k: v for k, v in spec.items() if k in
                   ("n_contexts", "support_size", "n_words", "n_sentences", "seed", "groups",
                    "group_size")}
        chunks, total, label = corpus.read_documents(synthetic.grammar_corpus(**grammar)), None, \
            "synthetic:grammar"
    elif source == "text":
        text = dataset["text"]
        files = corpus.text_files(text["path"])
        total = sum(f.stat().st_size for f in files)
        chunks = corpus.read_text(text["path"], text.get("separator", "<|endoftext|>"),
                                  chunk_mb=opts.chunk_mb)
        label = f"text:{text['path']}"
    elif source == "huggingface":
        hf = dict(dataset.get("huggingface") or {})
        chunks, total = corpus.read_huggingface(**hf, chunk_mb=opts.chunk_mb), None
        label = f"huggingface:{hf.get('name', 'roneneldan/TinyStories')}"
    else:
        raise UserError(f"dataset source: unknown source {source!r}; choose synthetic, text or "
                        "huggingface")
    tokenizer = make_tokenizer(**dataclasses.asdict(opts.tokenizer))
    top_m = opts.top_m
    candidates = opts.candidates
    if candidates is None and top_m is not None:
        candidates = max(64 * top_m, 4096)
    pc = ngrams.count_pairs(chunks, tokenizer, context_length=opts.context_length,
                            memory_mb=opts.memory_mb, candidates=candidates,
                            min_count=opts.min_count, total_bytes=total, progress=progress)
    return ngrams.select_table(
        pc, tokenizer, top_m=top_m, min_count=opts.min_count,
        min_pair_count=opts.min_pair_count, min_support=opts.min_support,
        max_support=opts.max_support, vocab_size=opts.vocab_size, unk=opts.unk,
        source=label)


def build_table(dataset: dict[str, Any], table: TableConfig | Mapping[str, Any], *,
                name: str = "", progress: bool = True):
    """Build a dataset's table and check it suits the theory: the ``table.zarr`` dataset.

    Its provenance records the settings used (``table``, every key with its value) and, as attr
    ``dataset``, the dataset's name (``name``; none for a table built by hand), which the
    stores trained on it carry on.
    """
    start = time.perf_counter()
    config = TableConfig.from_dict(table)
    result = make_table(dataset, config, progress=progress)
    result.check_for_theory(where=f"dataset {name}" if name else "table")
    if name:
        result.attrs["dataset"] = name
    wall = time.perf_counter() - start
    log.info("%s: m=%d contexts, V=%d tokens, n=%d pairs, H=%.4f nats, mean support %.2f "
             "(%.1f s)", name or "table", result.m, result.V, result.n, result.entropy,
             result.support_size.mean(), wall)
    return result.to_dataset({"dataset": dataset, "table": config.to_dict(), "name": name},
                             wall_seconds=wall)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "table", help="build a distinct-context table from a text corpus",
        description="Tokenize CORPUS (a UTF-8 file, or a folder of *.txt files), count every "
        "(context of K tokens → next token) pair in bounded memory, select contexts, and write "
        "the table store (π, P, support, entropy H, context token ids). The same builder as the "
        "pipeline's build_table rule.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("corpus", help="UTF-8 text file or folder of *.txt files")
    p.add_argument("--out", required=True, help="output store, e.g. table.zarr (replaced "
                   "atomically if it exists)")
    # Every default is TableConfig's (the `table` section's), shown by --help.
    default = TableConfig()
    p.add_argument("--context-length", "-k", type=int, default=default.context_length,
                   help="tokens per context (the paper's: 5)")
    p.add_argument("--separator", default="<|endoftext|>",
                   help=r"line separating documents ('\n' = one per line)")
    p.add_argument("--top-m", type=int, default=default.top_m, help="keep the M most frequent "
                   "contexts that pass the filters (None: all)")
    p.add_argument("--min-count", type=int, default=default.min_count,
                   help="drop contexts seen fewer times")
    p.add_argument("--min-pair-count", type=int, default=default.min_pair_count,
                   help="drop (context, next token) pairs seen fewer times")
    p.add_argument("--min-support", type=int, default=default.min_support,
                   help="drop contexts with fewer distinct next tokens")
    p.add_argument("--max-support", type=int, default=default.max_support,
                   help="drop contexts with more distinct next tokens (None: no bound)")
    p.add_argument("--vocab-size", type=int, default=default.vocab_size,
                   help="keep the V most frequent next tokens (None: all)")
    p.add_argument("--unk", choices=["drop", "map"], default=default.unk,
                   help="what happens to tokens beyond --vocab-size: drop their pairs, or map "
                   "them to one <unk> token")
    p.add_argument("--tokenizer", choices=["word", "huggingface"], default=default.tokenizer.kind,
                   help="word: lowercase words and punctuation marks; huggingface: a "
                   "tokenizers.Tokenizer given by --tokenizer-path")
    p.add_argument("--tokenizer-path", default=default.tokenizer.path,
                   help="a local tokenizer.json for --tokenizer huggingface")
    p.add_argument("--memory-mb", type=int, default=default.memory_mb,
                   help="memory budget of the streaming counter")
    p.add_argument("--candidates", type=int, default=default.candidates,
                   help="contexts recounted exactly in the second pass (None: 64 × top-m, at "
                   "least 4096)")
    p.add_argument("--chunk-mb", type=float, default=default.chunk_mb,
                   help="bytes of text read per chunk")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> None:
    separator = "\n" if args.separator == r"\n" else args.separator
    for flag in ("context_length", "min_count", "min_pair_count", "min_support", "memory_mb"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be at least 1")
    names = {f.name for f in dataclasses.fields(TableConfig)} - {"tokenizer"}
    table = TableConfig.from_dict(
        {**{k: getattr(args, k) for k in names},
         "tokenizer": {"kind": args.tokenizer, "path": args.tokenizer_path}})
    dataset = {"source": "text", "text": {"path": args.corpus, "separator": separator}}
    write_store(build_table(dataset, table, progress=not args.no_progress), args.out)
