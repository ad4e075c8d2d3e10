"""The table stage as users meet it: `ntpgeom table`, named configs, and one-line errors."""

import time

import pytest
import xarray as xr
from conftest import run

from ntpgeom.data.build import make_table
from ntpgeom.data.corpus import read_huggingface, read_text
from ntpgeom.data.table import load
from ntpgeom.errors import UserError


def test_cli_builds_a_table_from_the_sample(sample, tmp_path):
    out = tmp_path / "t.zarr"
    res = run("ntpgeom", "table", sample, "--context-length", "5", "--top-m", "50",
              "--min-count", "3", "--out", out, "--no-progress")
    assert res.returncode == 0, res.stderr
    t = load(out)
    assert t.m == 50 and t.context_length == 5
    assert t.contexts[0] == "once upon a time ,"  # the most frequent 5-gram of TinyStories
    ds = xr.open_zarr(out, consolidated=False)
    assert ds.attrs["source"].startswith("text:")


def test_cli_help_explains_every_option():
    res = run("ntpgeom", "table", "--help")
    assert res.returncode == 0
    for flag in ("--context-length", "--top-m", "--min-count", "--vocab-size", "--unk",
                 "--separator", "--memory-mb", "--tokenizer"):
        assert flag in res.stdout


@pytest.mark.parametrize("content, args, message", [
    (None, [], "does not exist"),
    ("", [], "no context of 5 tokens"),
    ("one two three four five six seven", ["--top-m", "10"], "only 0 contexts pass"),
    ("a b b a a b b a a", ["-k", "1", "--min-count", "1"], "every context has full support"),
])
def test_cli_errors_are_one_line(tmp_path, content, args, message):
    corpus = tmp_path / "c.txt"
    if content is not None:
        corpus.write_text(content)
    out = tmp_path / "t.zarr"
    res = run("ntpgeom", "table", corpus, "--out", out, "--no-progress", *args)
    assert res.returncode == 2
    assert message in res.stderr and "Traceback" not in res.stderr
    assert len([line for line in res.stderr.splitlines() if "error" in line]) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == ([corpus] if content is not None
                                                             else [])


def test_non_utf8_reports_the_byte_offset(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"fine text here\n" * 10 + b"caf\xe9\n")
    with pytest.raises(UserError, match=r"bad.txt: not valid UTF-8 at byte 153"):
        list(read_text(path))


def test_one_document_per_line(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("a b c\nd e f\n")
    t = make_table({"source": "text", "text": {"path": str(path), "separator": "\n"}},
                   {"context_length": 2, "min_count": 1}, progress=False)
    assert t.contexts == ["a b", "d e"]  # "b c → d" would cross a line


def test_folder_of_files(tmp_path):
    (tmp_path / "b.txt").write_text("x y z")
    (tmp_path / "a.txt").write_text("x y w")
    (tmp_path / "skip.md").write_text("x y q")
    t = make_table({"source": "text", "text": {"path": str(tmp_path)}},
                   {"context_length": 2, "min_count": 1}, progress=False)
    assert t.contexts == ["x y"] and t.tokens == ["w", "z"]


def test_tinystories_config_has_the_papers_shape(sample):
    import yaml
    from conftest import ROOT
    cfg = yaml.safe_load((ROOT / "config" / "tinystories.yaml").read_text())
    dataset = dict(cfg["datasets"]["tinystories_paper"])  # its table settings are its own
    assert (ROOT / dataset["text"]["path"]).resolve() == sample.resolve()
    dataset["text"] = {**dataset["text"], "path": str(sample)}
    t = make_table(dataset, dataset.pop("table"), progress=False)
    assert t.m == 400                      # paper: m ≈ 400
    assert 90 <= t.V <= 110                # paper: V = 104
    assert 4.5 <= t.support_size.mean() <= 6  # paper: mean support 5.05


@pytest.mark.parametrize("env", [{"HF_HUB_OFFLINE": "1"},
                                 {"HF_ENDPOINT": "http://127.0.0.1:9"}])  # a closed port
def test_huggingface_offline_fails_at_once(monkeypatch, env):
    pytest.importorskip("datasets")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    start = time.perf_counter()
    with pytest.raises(UserError, match="use `source: text`"):
        list(read_huggingface())
    assert time.perf_counter() - start < 10


def test_unknown_tokenizer_and_source():
    with pytest.raises(UserError, match="unknown tokenizer 'bpe'"):
        make_table({"source": "text", "text": {"path": __file__}},
                   {"tokenizer": {"kind": "bpe"}}, progress=False)
    with pytest.raises(UserError, match="unknown source 'web'"):
        make_table({"source": "web"}, {}, progress=False)
