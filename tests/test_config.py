"""The config layer: one-line errors (ntpgeom.config), the shipped sample, and the named configs.

The unit tests check each message against the schema that produced it; the workflow tests run
real `snakemake -n` on bad configs, and dry-run and build the tables of every named config on a
fresh copy of the checkout (marked slow, as the other end-to-end tests).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import pytest
import yaml
from conftest import ROOT, SAMPLE, run

from ntpgeom.config import dataset_section, format_error, key_path, merge, validate
from ntpgeom.errors import UserError

SCHEMAS = ROOT / "schemas"
NAMED = sorted(p.stem for p in (ROOT / "config").glob("*.yaml"))
SAMPLE_SHA256 = "ba02237f5747a07d420cb7329f721fdc51b6f5c35a81788b9c4bb871e15ff30a"


def _grammar(**extra) -> dict:
    return {"datasets": {"grammar": {"source": "synthetic", "synthetic": {"kind": "grammar"},
                                     **extra}}}


def _message(config: dict) -> str:
    with pytest.raises(UserError) as err:
        validate(config, SCHEMAS / "config.schema.yaml")
    message = str(err.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------------------------
# ntpgeom.config: messages

def test_unknown_top_level_key_names_the_nearest_one():
    assert _message({**_grammar(), "tabel": {}}) == (
        "tabel: unknown key; did you mean `table`? allowed: datasets, geometry, grid_batch_gpu, "
        "grids, linear, semantics, svm, table, train")


def test_unknown_section_inside_a_dataset_entry_is_refused():
    message = _message(_grammar(tabel={"top_m": 5}))
    assert message.startswith("datasets.grammar.tabel: unknown key; did you mean `table`?")
    assert "source" in message and "synthetic" in message  # the allowed keys are listed


def test_unknown_key_without_a_near_one_lists_the_allowed_keys():
    message = _message({"datasets": {"g": {"source": "synthetic",
                                           "synthetic": {"kind": "grammar", "zzz": 1}}}})
    assert message.startswith("datasets.g.synthetic.zzz: unknown key; allowed: V, ")
    assert "kind" in message and "did you mean" not in message


def test_bad_enum_value_names_the_value_and_the_choices():
    message = _message({"datasets": {"g": {"source": "synthetic",
                                           "synthetic": {"kind": "grammer"}}}})
    assert message == ("datasets.g.synthetic.kind: 'grammer' is not allowed; did you mean "
                       "`grammar`? allowed: grammar, ksubset, random, attributes, hierarchy")


def test_missing_required_key_of_a_source():
    assert _message({"datasets": {"t": {"source": "text"}}}) == "datasets.t: missing key `text`"


def test_no_dataset_and_wrong_type():
    assert _message({"datasets": {}}) == "datasets: {} needs at least 1 entry(ies)"
    assert _message({"datasets": {"t": {"source": "text", "text": {"path": 3}}}}) == (
        "datasets.t.text.path: 3 is not of type string")


def test_defaults_are_filled_and_not_shared():
    a, b = validate({}, SCHEMAS / "svm.schema.yaml"), validate({}, SCHEMAS / "svm.schema.yaml")
    assert a["solvers"] == ["admm", "scs"] and a["admm"]["anderson"] == 8
    a["solvers"].append("mosek")
    assert b["solvers"] == ["admm", "scs"]  # the default list is a copy, not the schema's


def test_range_error_and_long_values_are_cut():
    with pytest.raises(UserError, match=r"^table\.top_m: -3 is out of range; it must be ≥ 1$"):
        validate({"top_m": -3}, SCHEMAS / "table.schema.yaml", where="table")
    with pytest.raises(UserError) as err:
        validate({"d": "x" * 500}, SCHEMAS / "train.schema.yaml", where="train")
    assert len(str(err.value)) < 120 and str(err.value).endswith("... is not of type array")


def test_alternatives_and_sizes_are_spelled_out():
    optimizers = {"optimizers": {"gd": {"optimizer": "gd", "lr": "fast"}}}
    with pytest.raises(UserError, match=r"^linear\.optimizers\.gd\.lr: 'fast' is not allowed; "
                                        r"expected a number > 0 or 'auto'$"):
        validate(optimizers, SCHEMAS / "linear.schema.yaml", where="linear")
    with pytest.raises(UserError, match=r"^svm\.solvers: \['admm', 'admm'\] has repeated items$"):
        validate({"solvers": ["admm", "admm"]}, SCHEMAS / "svm.schema.yaml", where="svm")
    with pytest.raises(UserError, match=r"^grids\.g\.axes: unknown key 'dd'; did you mean `d`\?"):
        validate({"grids": {"g": {"axes": {"dd": [1]}}}}, SCHEMAS / "grid.schema.yaml",
                 set_default=False)


def test_a_number_yaml_reads_as_a_string_gets_a_hint():
    lr = yaml.safe_load("lr: 1e-4")  # YAML 1.1 needs the dot: this is the string '1e-4'
    with pytest.raises(UserError) as err:
        validate(lr, SCHEMAS / "train.schema.yaml", where="train")
    assert str(err.value) == ("train.lr: '1e-4' is not of type number (YAML reads 1e-4 as a "
                              "string: write it with a dot, e.g. 1.0e-4)")


def test_format_error_of_a_nested_list_item():
    from jsonschema import Draft202012Validator
    schema = {"type": "object", "properties": {"d": {"type": "array", "items": {"minimum": 1}}}}
    error = next(Draft202012Validator(schema).iter_errors({"d": [4, 0]}))
    assert format_error(error, "train") == "train.d[1]: 0 is out of range; it must be ≥ 1"
    assert key_path("", []) == "config" and key_path("", ["a", 0, "b"]) == "a[0].b"


def test_a_long_list_of_choices_keeps_the_nearest():
    names = [f"name{i:02d}" for i in range(40)]
    with pytest.raises(UserError) as err:
        validate({"x": "name07x"}, {"type": "object", "properties": {"x": {"enum": names}}})
    message = str(err.value)
    assert message.startswith("x: 'name07x' is not allowed; did you mean `name07`? allowed: name07")
    assert message.endswith(", …") and message.count("name") == 2 + 24


def test_merge_is_deep_and_copies():
    base = {"a": {"x": 1, "y": [1]}, "b": 2}
    out = merge(base, {"a": {"x": 5}, "c": 3})
    assert out == {"a": {"x": 5, "y": [1]}, "b": 2, "c": 3}
    out["a"]["y"].append(2)
    assert base["a"]["y"] == [1]


def test_dataset_section_names_where_the_bad_key_was_written():
    config = {"datasets": {"g": {"table": {"top_mm": 5}}, "h": {}}, "table": {"min_cont": 2}}
    schema = SCHEMAS / "table.schema.yaml"
    with pytest.raises(UserError, match=r"^datasets\.g\.table\.top_mm: unknown key; did you mean "
                                        r"`top_m`\?"):
        dataset_section({**config, "table": {}}, "g", "table", schema)
    with pytest.raises(UserError, match=r"^table\.min_cont: unknown key; did you mean "
                                        r"`min_count`\?"):
        dataset_section(config, "h", "table", schema)
    good = dataset_section({"datasets": {"g": {"table": {"top_m": 7}}}, "table": {"min_count": 3}},
                           "g", "table", schema)
    assert good["top_m"] == 7 and good["min_count"] == 3 and good["context_length"] == 5


# ---------------------------------------------------------------------------------------------
# the shipped data and configs

def test_the_sample_ships_with_its_checksum_and_licence():
    assert hashlib.sha256(SAMPLE.read_bytes()).hexdigest() == SAMPLE_SHA256
    readme = (ROOT / "data" / "README.md").read_text()
    assert SAMPLE_SHA256 in readme and "CDLA-Sharing-1.0" in readme


def test_no_config_reads_outside_the_project():
    for path in [ROOT / "config.yaml", *(ROOT / "config").glob("*.yaml")]:
        assert "../" not in path.read_text(), path


@pytest.mark.parametrize("name", NAMED)
def test_named_config_composes_with_the_default(name):
    """Merged over config.yaml (as --configfile does), every section of every dataset validates,
    and a named config never sets a global `table`, which would change the default tables."""
    default = yaml.safe_load((ROOT / "config.yaml").read_text())
    named = yaml.safe_load((ROOT / "config" / f"{name}.yaml").read_text())
    assert "table" not in named, "dataset-specific table settings belong in the dataset entry"
    config = validate(merge(default, named), SCHEMAS / "config.schema.yaml")
    for dataset in config["datasets"]:
        for section in ("table", "svm", "train", "geometry", "linear", "semantics"):
            dataset_section(config, dataset, section, SCHEMAS / f"{section}.schema.yaml")


@pytest.mark.parametrize("first, second", [(a, b) for a in NAMED for b in NAMED if a != b])
def test_two_named_configs_compose_in_either_order(first, second):
    """`--configfile config/a.yaml config/b.yaml`: both orders validate, and they agree on every
    dataset they both define (the grid configs share `ksubset8`)."""
    default = yaml.safe_load((ROOT / "config.yaml").read_text())
    a, b = (yaml.safe_load((ROOT / "config" / f"{n}.yaml").read_text()) for n in (first, second))
    for shared in set(a.get("datasets", {})) & set(b.get("datasets", {})):
        assert a["datasets"][shared] == b["datasets"][shared], shared
    config = validate(merge(merge(default, a), b), SCHEMAS / "config.schema.yaml")
    for dataset in config["datasets"]:
        for section in ("table", "svm", "train", "geometry", "linear", "semantics"):
            dataset_section(config, dataset, section, SCHEMAS / f"{section}.schema.yaml")


# ---------------------------------------------------------------------------------------------
# real snakemake runs

def _copy_checkout(dest):
    """A fresh copy of the checkout: the tracked and untracked-but-not-ignored files only."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def _default_tables() -> list[str]:
    default = yaml.safe_load((ROOT / "config.yaml").read_text())
    return [f"results/{d}/table.zarr" for d in default["datasets"]]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """A fresh copy of the checkout, with the default config's tables built."""
    work = _copy_checkout(tmp_path_factory.mktemp("checkout"))
    res = run("snakemake", "--cores", "1", *_default_tables(), cwd=work, timeout=300,
              env={"PYTHONPATH": str(work / "src")})
    assert res.returncode == 0, res.stderr[-3000:]
    return work


def _bad_config_run(checkout, tmp_path, config: dict):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump(config))
    res = run("snakemake", "-n", "--cores", "1", "--configfile", cfg, cwd=checkout, timeout=120,
              env={"PYTHONPATH": str(checkout / "src")})
    assert res.returncode != 0
    out = res.stdout + res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("config: ")]
    assert len(errors) == 1, out
    # Nothing else: no schema dump, no traceback, not even Snakemake's error header.
    for noise in ("Traceback", "Failed validating", "WorkflowError", 'File "', "$schema"):
        assert noise not in out, out
    assert len(out.splitlines()) <= 3, out  # the line and Snakemake's two start-up notes
    return errors[0]


@pytest.mark.slow
@pytest.mark.parametrize("config, expected", [
    (_grammar(tabel={"top_m": 5}),
     "config: datasets.grammar.tabel: unknown key; did you mean `table`?"),
    ({"tabel": {"top_m": 5}}, "config: tabel: unknown key; did you mean `table`?"),
    (_grammar(table={"top_mm": 5}),
     "config: datasets.grammar.table.top_mm: unknown key; did you mean `top_m`?"),
    ({"svm": {"solvers": ["admn"]}},
     "config: svm.solvers[0]: 'admn' is not allowed; did you mean `admm`?"),
])
def test_bad_config_is_one_line(checkout, tmp_path, config, expected):
    assert _bad_config_run(checkout, tmp_path, config).startswith(expected)


@pytest.mark.slow
def test_the_paper_tinystories_with_the_papers_training_dry_runs(checkout):
    res = run("snakemake", "--cores", "1", "-n", "--configfile", "config/tinystories.yaml",
              "config/paper.yaml", cwd=checkout, timeout=300,
              env={"PYTHONPATH": str(checkout / "src")})
    assert res.returncode == 0, res.stderr[-3000:]
    assert "results/tinystories_paper/train/transformer/d128-seed0.zarr" in res.stdout


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMED)
def test_named_config_dry_runs_and_builds_its_tables(checkout, name):
    """On a fresh copy of the checkout (no ../shared beside it): `snakemake -n` with the named
    config over config.yaml, then every table it names, built for real. The default datasets'
    tables stay as they are: a named config must not change their settings."""
    named = ("--configfile", f"config/{name}.yaml")  # the copy's; it takes every argument after
    env = {"PYTHONPATH": str(checkout / "src")}  # the copy's package, not this checkout's
    res = run("snakemake", "--cores", "1", "-n", *_default_tables(), *named, cwd=checkout,
              timeout=300, env=env)
    assert res.returncode == 0 and "Nothing to be done" in res.stdout + res.stderr, res.stdout
    res = run("snakemake", "--cores", "1", "-n", *named, cwd=checkout, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    config = merge(yaml.safe_load((checkout / "config.yaml").read_text()),
                   yaml.safe_load((checkout / "config" / f"{name}.yaml").read_text()))
    tables = [f"results/{d}/table.zarr" for d in config["datasets"]]
    res = run("snakemake", "--cores", "1", *tables, *named, cwd=checkout, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    for table in tables:
        assert (checkout / table).is_dir(), table


@pytest.mark.slow
def test_relative_text_path_is_from_the_workflow_folder(tmp_path):
    """config.yaml's `data/tinystories_sample.txt` is found with the working directory elsewhere
    (--directory), and the table is the default run's real-text one (m = 100, V = 30)."""
    from ntpgeom.data.table import load
    shutil.copy(ROOT / "config.yaml", tmp_path)  # the Snakefile's `configfile:` is from there
    res = run("snakemake", "--snakefile", ROOT / "Snakefile", "--directory", tmp_path,
              "--cores", "1", "results/tinystories/table.zarr", timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    table = load(tmp_path / "results/tinystories/table.zarr")
    assert (table.m, table.V) == (100, 30)
    assert 4 <= table.support_size.mean() <= 6 and (table.support_size >= 2).all()
