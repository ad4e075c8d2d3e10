"""Corpus → ``table.zarr``: the table stage, for Snakemake (:func:`build_table`) and the CLI.

``ntpgeom table CORPUS --context-length K [--top-m M] [--min-count C] --out X.zarr`` runs the same
builder by hand.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from ntpgeom.data import corpus, ngrams, synthetic
from ntpgeom.data.table import Table
from ntpgeom.data.tokenize import make_tokenizer
from ntpgeom.errors import UserError

log = logging.getLogger(__name__)

#: Defaults of the ``table`` config section (schemas/table.schema.yaml), for use outside Snakemake.
TABLE_DEFAULTS: dict[str, Any] = {
    "context_length": 5, "tokenizer": {"kind": "word", "path": None, "name": None},
    "top_m": None, "min_count": 2, "min_pair_count": 1, "min_support": 1, "max_support": None,
    "vocab_size": None, "unk": "drop", "memory_mb": 512, "candidates": None, "chunk_mb": 4.0,
}


def make_table(dataset: dict[str, Any], table: dict[str, Any], *, progress: bool = True) -> Table:
    """Build the table of one ``datasets:`` entry with the ``table`` section's settings."""
    opts = {**TABLE_DEFAULTS, **table}
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
        if kind != "grammar":
            raise UserError(f"synthetic.kind: unknown generator {kind!r}; choose grammar, "
                            "ksubset, random or attributes")
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
                                  chunk_mb=opts["chunk_mb"])
        label = f"text:{text['path']}"
    elif source == "huggingface":
        hf = dict(dataset.get("huggingface") or {})
        chunks, total = corpus.read_huggingface(**hf, chunk_mb=opts["chunk_mb"]), None
        label = f"huggingface:{hf.get('name', 'roneneldan/TinyStories')}"
    else:
        raise UserError(f"dataset source: unknown source {source!r}; choose synthetic, text or "
                        "huggingface")
    tokenizer = make_tokenizer(**opts["tokenizer"])
    top_m = opts["top_m"]
    candidates = opts["candidates"]
    if candidates is None and top_m is not None:
        candidates = max(64 * top_m, 4096)
    pc = ngrams.count_pairs(chunks, tokenizer, context_length=opts["context_length"],
                            memory_mb=opts["memory_mb"], candidates=candidates,
                            min_count=opts["min_count"], total_bytes=total, progress=progress)
    return ngrams.select_table(
        pc, tokenizer, top_m=top_m, min_count=opts["min_count"],
        min_pair_count=opts["min_pair_count"], min_support=opts["min_support"],
        max_support=opts["max_support"], vocab_size=opts["vocab_size"], unk=opts["unk"],
        source=label)


def build_table(dataset: dict[str, Any], table: dict[str, Any], *, out: str | Path,
                name: str = "", progress: bool = True) -> Table:
    """Build a dataset's table, check it suits the theory, and write ``out`` atomically."""
    start = time.perf_counter()
    result = make_table(dataset, table, progress=progress)
    result.check_for_theory(where=f"dataset {name}" if name else "table")
    wall = time.perf_counter() - start
    result.save(out, {"dataset": dataset, "table": table, "name": name}, wall_seconds=wall)
    log.info("%s: m=%d contexts, V=%d tokens, n=%d pairs, H=%.4f nats, mean support %.2f "
             "(%.1f s)", out, result.m, result.V, result.n, result.entropy,
             result.support_size.mean(), wall)
    return result


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "table", help="build a distinct-context table from a text corpus",
        description="Tokenize CORPUS (a UTF-8 file, or a folder of *.txt files), count every "
        "(context of K tokens → next token) pair in bounded memory, select contexts, and write "
        "the table store (π, P, support, entropy H, context token ids). The same builder as the "
        "pipeline's build_table rule.")
    p.add_argument("corpus", help="UTF-8 text file or folder of *.txt files")
    p.add_argument("--out", required=True, help="output store, e.g. table.zarr (replaced "
                   "atomically if it exists)")
    p.add_argument("--context-length", "-k", type=int, default=5,
                   help="tokens per context (default 5, the paper's)")
    p.add_argument("--separator", default="<|endoftext|>",
                   help=r"line separating documents (default <|endoftext|>; '\n' = one per line)")
    p.add_argument("--top-m", type=int, help="keep the M most frequent contexts that pass the "
                   "filters (default: all)")
    p.add_argument("--min-count", type=int, default=2,
                   help="drop contexts seen fewer times (default 2)")
    p.add_argument("--min-pair-count", type=int, default=1,
                   help="drop (context, next token) pairs seen fewer times (default 1)")
    p.add_argument("--min-support", type=int, default=1,
                   help="drop contexts with fewer distinct next tokens (default 1)")
    p.add_argument("--max-support", type=int,
                   help="drop contexts with more distinct next tokens (default: no bound)")
    p.add_argument("--vocab-size", type=int, help="keep the V most frequent next tokens "
                   "(default: all)")
    p.add_argument("--unk", choices=["drop", "map"], default="drop",
                   help="what happens to tokens beyond --vocab-size: drop their pairs, or map "
                   "them to one <unk> token (default drop)")
    p.add_argument("--tokenizer", choices=["word", "huggingface"], default="word",
                   help="word (default): lowercase words and punctuation marks; huggingface: a "
                   "tokenizers.Tokenizer given by --tokenizer-path")
    p.add_argument("--tokenizer-path", help="a local tokenizer.json for --tokenizer huggingface")
    p.add_argument("--memory-mb", type=int, default=512,
                   help="memory budget of the streaming counter (default 512)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> None:
    separator = "\n" if args.separator == r"\n" else args.separator
    for flag in ("context_length", "min_count", "min_pair_count", "min_support", "memory_mb"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be at least 1")
    table = {
        "context_length": args.context_length, "top_m": args.top_m, "min_count": args.min_count,
        "min_pair_count": args.min_pair_count, "min_support": args.min_support,
        "max_support": args.max_support, "vocab_size": args.vocab_size, "unk": args.unk,
        "memory_mb": args.memory_mb,
        "tokenizer": {"kind": args.tokenizer, "path": args.tokenizer_path, "name": None},
    }
    dataset = {"source": "text", "text": {"path": args.corpus, "separator": separator}}
    build_table(dataset, table, out=args.out, progress=not args.no_progress)
