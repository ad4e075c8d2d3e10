"""Corpus sources, read as a stream of byte chunks with documents separated by ``b"\\x00"``.

Each source yields ``(chunk, nbytes)``: the chunk ends at a line break (so no token or character is
cut), a literal NUL in the text becomes a space, and the end of every file is a document boundary.
Chunks are validated as UTF-8; a bad byte is reported with its file and byte offset.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from ntpgeom.errors import UserError

log = logging.getLogger(__name__)

Chunks = Iterator[tuple[bytes, int]]


def text_files(path: str | os.PathLike) -> list[Path]:
    """The files of a ``text`` source: the file, or every ``*.txt`` under a folder, sorted."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise UserError(f"text.path: folder {path} holds no *.txt files")
        return files
    raise UserError(f"text.path: {path} does not exist; give a UTF-8 text file or a folder of "
                    "*.txt files (relative paths are relative to the working directory)")


def _separate(block: bytes, separator: bytes) -> bytes:
    block = block.replace(b"\x00", b" ")
    return block.replace(separator, b"\x00")


def read_text(path: str | os.PathLike, separator: str = "<|endoftext|>",
              chunk_mb: float = 4.0) -> Chunks:
    """Stream a file or folder in chunks of about ``chunk_mb`` MB (see module docstring)."""
    sep = separator.encode("utf-8")
    if not sep:
        raise UserError("text.separator must not be empty; use \"\\n\" for one document per line")
    size = max(int(chunk_mb * 1e6), 1024)
    for file in text_files(path):
        offset = 0
        carry = b""
        with open(file, "rb") as fh:
            while True:
                block = fh.read(size)
                data = carry + block
                if not data:
                    break
                if block:
                    # Cut after the last newline so no character, token or separator is split.
                    cut = data.rfind(b"\n") + 1 or len(data)
                    data, carry = data[:cut], data[cut:]
                else:
                    carry = b""
                if not data.isascii():
                    try:
                        data.decode("utf-8")
                    except UnicodeDecodeError as err:
                        raise UserError(f"{file}: not valid UTF-8 at byte {offset + err.start} "
                                        f"({err.reason}); convert the file to UTF-8 (e.g. iconv)"
                                        ) from None
                offset += len(data)
                yield _separate(data, sep), len(data)
                if not block:
                    break
        yield b"\x00", 0  # files are documents apart


def read_huggingface(name: str = "roneneldan/TinyStories", split: str = "train",
                     text_field: str = "text", max_documents: int | None = None,
                     chunk_mb: float = 4.0) -> Chunks:
    """Stream a Hugging Face dataset with ``datasets`` (streaming, nothing stored locally).

    Offline it fails at once with a one-line error that says how to use a local copy instead.
    """
    hint = ("download the corpus once where there is network (e.g. TinyStories-train.txt) and "
            "use `source: text` with `text: {path: <file>}` instead")
    try:
        import datasets
    except ImportError:
        raise UserError("source huggingface needs the `datasets` package: pip install "
                        f"'ntpgeom[hf]'; or {hint}") from None
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        raise UserError(f"source huggingface: offline mode is set (HF_HUB_OFFLINE); {hint}")
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    if not _reachable(host, port, timeout=5.0):
        raise UserError(f"source huggingface: {host} cannot be reached; {hint}")
    try:
        stream = datasets.load_dataset(name, split=split, streaming=True)
    except Exception as err:
        raise UserError(f"source huggingface: cannot open {name!r} ({type(err).__name__}: "
                        f"{str(err)[:120]}); {hint}") from None
    size = max(int(chunk_mb * 1e6), 1024)
    parts: list[bytes] = []
    nbytes = 0
    for i, row in enumerate(stream):
        if max_documents is not None and i >= max_documents:
            break
        doc = str(row[text_field]).encode("utf-8")
        parts.append(doc.replace(b"\x00", b" "))
        nbytes += len(doc)
        if nbytes >= size:
            yield b"\x00".join(parts) + b"\x00", nbytes
            parts, nbytes = [], 0
    if parts:
        yield b"\x00".join(parts) + b"\x00", nbytes


def _reachable(host: str, port: int, timeout: float) -> bool:
    """Whether a TCP connection opens within ``timeout`` (DNS included, which has no timeout)."""
    ok: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                ok.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(ok)


def read_documents(docs: list[str]) -> Chunks:
    """In-memory documents (the synthetic grammar corpus) as one chunk."""
    data = "\x00".join(d.replace("\x00", " ") for d in docs).encode("utf-8") + b"\x00"
    yield data, len(data)
