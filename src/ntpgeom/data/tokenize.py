"""Tokenizers that turn a chunk of documents into an array of token ids.

Both return int32 ids with :data:`BOUNDARY` (0) between documents, so that n-grams never cross a
document; real tokens have ids ≥ 1 and strings from :meth:`Tokenizer.strings`.

The word tokenizer is the default and the fast path (well over 100 MB/s on one core). Its rule:
lowercase; a word is a maximal run of letters, digits, marks or ``_`` (Python's ``\\w``); every
other non-space character (punctuation, symbols, curly quotes) is a token of its own. One compiled
pass (numba) over the bytes splits ASCII text and maps each raw token to an id through a hash
table; the Unicode-aware regex runs only once per *distinct* raw token that holds non-ASCII bytes.
"""

from __future__ import annotations

import re
from typing import Protocol

import numba
import numpy as np

from ntpgeom.errors import UserError

#: Id of the document boundary; never a real token.
BOUNDARY = 0

_PIECES = re.compile(r"\w+|[^\w\s]")


class Tokenizer(Protocol):
    def encode(self, docs: bytes) -> np.ndarray:
        """Ids of ``docs`` (UTF-8 documents separated by ``b"\\x00"``), boundaries as 0."""

    def strings(self, ids: np.ndarray) -> list[str]:
        """The token strings of ``ids``."""


class WordTokenizer:
    """Lowercased words and single punctuation marks; a growing vocabulary (see module doc)."""

    def __init__(self) -> None:
        self._table = _RawTable()
        self._first = [BOUNDARY]                    # raw id → offset into the piece table
        self._length = [1]                          # raw id → number of tokens (0 allowed)
        self._pieces = [BOUNDARY]                   # flat table of token ids
        self._vocab: dict[str, int] = {}            # token string → id
        self._names: list[str] = ["<boundary>"]     # id → token string

    def _add_raw(self, raw: bytes) -> None:
        """Register a new raw token: its pieces by the Unicode-aware rule, as token ids."""
        text = raw.decode("utf-8", errors="replace").lower()
        self._first.append(len(self._pieces))
        n = 0
        for piece in _PIECES.findall(text):
            tid = self._vocab.get(piece)
            if tid is None:
                tid = self._vocab[piece] = len(self._names)
                self._names.append(piece)
            self._pieces.append(tid)
            n += 1
        self._length.append(n)

    def encode(self, docs: bytes) -> np.ndarray:
        buf = np.frombuffer(docs.lower(), dtype=np.uint8)
        rid, new_spans = self._table.scan(buf)
        for a, b in new_spans:
            self._add_raw(docs[a:b])
        first = np.asarray(self._first, dtype=np.int64)[rid]
        length = np.asarray(self._length, dtype=np.int64)[rid]
        pieces = np.asarray(self._pieces, dtype=np.int32)
        if (length == 1).all():
            return pieces[first]
        # Expand raw tokens into their pieces (only non-ASCII raw tokens can have ≠ 1):
        # output position k reads pieces[first[r] + (k − start of r's run)].
        total = int(length.sum())
        run_start = np.cumsum(length) - length
        offset = np.arange(total) - np.repeat(run_start, length)
        return pieces[np.repeat(first, length) + offset]

    def strings(self, ids: np.ndarray) -> list[str]:
        return [self._names[i] for i in np.asarray(ids).tolist()]


def _byte_classes() -> np.ndarray:
    """0 = ASCII space, 1 = word byte (ASCII letter/digit/_ or any non-ASCII byte), 2 = a
    one-byte token (ASCII punctuation, and NUL, the document boundary)."""
    cls = np.zeros(256, dtype=np.uint8)
    for c in range(256):
        ch = chr(c)
        if c >= 128 or ch.isalnum() or ch == "_":
            cls[c] = 1
        elif c == 0 or not ch.isspace():
            cls[c] = 2
    return cls


_CLASSES = _byte_classes()


class _RawTable:
    """Open-addressing hash table from a raw token's bytes (FNV-1a) to its raw id, in numba.

    Raw tokens are maximal runs of word bytes, or single punctuation bytes; non-ASCII runs are
    split further by :class:`WordTokenizer` with the Unicode-aware rule, once per distinct run.
    """

    #: New raw tokens recorded per kernel call; the scan pauses when it fills. Reused across
    #: chunks: per-byte scratch arrays made peak memory creep with the corpus size (heap
    #: fragmentation of large, short-lived allocations).
    NEW_CAPACITY = 1 << 16

    def __init__(self, size: int = 1 << 16) -> None:
        self.keys = np.zeros(size, dtype=np.uint64)
        self.vals = np.zeros(size, dtype=np.int32)
        self.n = 0
        self._starts = np.empty(self.NEW_CAPACITY, dtype=np.int64)
        self._ends = np.empty(self.NEW_CAPACITY, dtype=np.int64)
        boundary = np.zeros(1, dtype=np.uint8)
        self.scan(boundary)  # raw id 0 is the boundary byte, b"\x00"

    def scan(self, buf: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int]]]:
        out = np.empty(len(buf), dtype=np.int32)
        spans: list[tuple[int, int]] = []
        k = pos = 0
        while True:
            k, self.n, pos, new = _scan(buf, pos, _CLASSES, self.keys, self.vals, self.n,
                                        len(self.keys) // 2, out, k, self._starts, self._ends)
            spans += zip(self._starts[:new].tolist(), self._ends[:new].tolist(), strict=True)
            if pos >= len(buf):
                break
            if self.n >= len(self.keys) // 2:  # half full: double and rehash, then go on
                keys, vals = self.keys, self.vals
                self.keys = np.zeros(2 * len(keys), dtype=np.uint64)
                self.vals = np.zeros(2 * len(keys), dtype=np.int32)
                _rehash(keys, vals, self.keys, self.vals)
        return out[:k], spans


@numba.njit(cache=True, nogil=True)
def _scan(buf, pos, cls, keys, vals, n_raw, limit, out, k, starts, ends):  # pragma: no cover
    """Raw ids of the raw tokens of ``buf[pos:]`` into ``out[k:]``; new ones get the next ids,
    their spans go to ``starts``/``ends``.

    Stops before inserting past ``limit`` table entries or ``len(starts)`` new tokens, and
    returns where it stopped.
    """
    mask = keys.shape[0] - 1
    new = 0
    n = buf.shape[0]
    i = pos
    while i < n:
        c = cls[buf[i]]
        if c == 0:
            i += 1
            continue
        start = i
        i += 1
        if c == 1:
            while i < n and cls[buf[i]] == 1:
                i += 1
        h = np.uint64(14695981039346656037)
        for j in range(start, i):
            h = (h ^ np.uint64(buf[j])) * np.uint64(1099511628211)
        if h == 0:
            h = np.uint64(1)  # 0 marks an empty slot
        slot = np.int64(h & np.uint64(mask))
        while True:
            if keys[slot] == h:
                out[k] = vals[slot]
                break
            if keys[slot] == 0:
                if n_raw >= limit or new >= starts.shape[0]:
                    return k, n_raw, start, new
                keys[slot] = h
                vals[slot] = n_raw
                out[k] = n_raw
                starts[new] = start
                ends[new] = i
                new += 1
                n_raw += 1
                break
            slot = (slot + 1) & mask
        k += 1
    return k, n_raw, n, new


@numba.njit(cache=True, nogil=True)
def _rehash(keys, vals, new_keys, new_vals):  # pragma: no cover
    mask = new_keys.shape[0] - 1
    for i in range(keys.shape[0]):
        h = keys[i]
        if h != 0:
            slot = np.int64(h & np.uint64(mask))
            while new_keys[slot] != 0:
                slot = (slot + 1) & mask
            new_keys[slot] = h
            new_vals[slot] = vals[i]


class HuggingFaceTokenizer:
    """A ``tokenizers.Tokenizer`` from a local ``tokenizer.json`` or a hub name (needs ``hf``)."""

    def __init__(self, path: str | None = None, name: str | None = None) -> None:
        try:
            from tokenizers import Tokenizer as HFTokenizer
        except ImportError:
            raise UserError("table.tokenizer.kind: huggingface needs the `tokenizers` package; "
                            "install it with: pip install 'ntpgeom[hf]'") from None
        if path:
            try:
                self._tok = HFTokenizer.from_file(str(path))
            except Exception as err:
                raise UserError(f"table.tokenizer.path: cannot read {path}: {err}") from None
        elif name:
            try:
                self._tok = HFTokenizer.from_pretrained(name)
            except Exception as err:
                raise UserError(f"table.tokenizer.name: cannot load {name!r} from the Hugging Face "
                                f"hub ({type(err).__name__}); offline, save its tokenizer.json "
                                "and set table.tokenizer.path instead") from None
        else:
            raise UserError("table.tokenizer: kind huggingface needs `path` (a tokenizer.json) "
                            "or `name` (a hub id)")

    def encode(self, docs: bytes) -> np.ndarray:
        parts = [d for d in docs.decode("utf-8").split("\x00")]
        out = []
        for enc in self._tok.encode_batch(parts, add_special_tokens=False):
            out.append(np.asarray(enc.ids, dtype=np.int32) + 1)  # shift: 0 is the boundary
            out.append(np.zeros(1, dtype=np.int32))
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int32)

    def strings(self, ids: np.ndarray) -> list[str]:
        return ["<boundary>" if i == 0 else self._tok.id_to_token(i - 1)
                for i in np.asarray(ids).tolist()]


def make_tokenizer(kind: str = "word", path: str | None = None,
                   name: str | None = None) -> Tokenizer:
    """The tokenizer named by the ``table.tokenizer`` config section."""
    if kind == "word":
        return WordTokenizer()
    if kind == "huggingface":
        return HuggingFaceTokenizer(path=path, name=name)
    raise UserError(f"table.tokenizer.kind: unknown tokenizer {kind!r}; choose word or huggingface")
