"""Config flows one way: each section is a frozen dataclass whose defaults are stated once.

The dataclasses (TableConfig, SvmConfig, TrainConfig, GeometryConfig, SemanticsConfig,
LinearConfig with its EmbeddingConfig entries, and a grid's GridPoint) hold the defaults; the
schemas' `default:`s document them, the CLI's options and the package functions' keyword
defaults read them. These tests prove every copy agrees, key by key, so a default changed in one
place and not the other fails here. Some run real `snakemake -n` with the `--config` override
the README documents.
"""

from __future__ import annotations

import dataclasses
import inspect
import shutil

import pytest
import yaml
from conftest import ROOT, run

from ntpgeom.cli import make_parser
from ntpgeom.config import (
    command_line_booleans,
    dataclass_defaults,
    from_section,
    schema_defaults,
    validate,
)
from ntpgeom.data.build import TableConfig, TokenizerConfig, build_table, make_table
from ntpgeom.errors import UserError
from ntpgeom.metrics.geometry import GeometryConfig, run_geometry
from ntpgeom.metrics.semantics import SemanticsConfig, run_semantics
from ntpgeom.studies.grid import POINT_KEYS, GridPoint, GridSpec, parse_grid
from ntpgeom.studies.linear import (
    EmbeddingConfig,
    LinearConfig,
    linear_reference,
    linear_reference_for,
    train_config,
)
from ntpgeom.theory.svm import SvmConfig, solve, solve_options
from ntpgeom.theory.svm.admm import ANDERSON_MEMORY, solve_admm
from ntpgeom.theory.svm.cvx import solve_cvx
from ntpgeom.train.config import TrainConfig

SCHEMAS = ROOT / "schemas"
SECTIONS = {"table": TableConfig, "svm": SvmConfig, "geometry": GeometryConfig,
            "linear": LinearConfig, "semantics": SemanticsConfig}
# Keys of the `train` section that list one value per run (the run's TrainConfig takes one).
PER_RUN = {"models": "model", "d": "d", "seeds": "seed", "ridge": "ridge",
           "init_scale": "init_scale"}
# TrainConfig fields the `train` section does not set (the run's own, or runtime knobs).
TRAIN_ONLY = {"model", "seed", "threads", "dtype"}


def _keyword_defaults(func) -> dict:
    return {name: p.default for name, p in inspect.signature(func).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _types(tree):
    """The type of every value, dicts walked (an int 4 and a float 4.0 compare equal but are
    stored apart)."""
    return {k: _types(v) if isinstance(v, dict) else type(v) for k, v in tree.items()}


# ---------------------------------------------------------------------------------------------
# schema defaults == dataclass defaults, key by key

@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_schema_defaults_are_the_dataclass_defaults(section):
    schema = schema_defaults(SCHEMAS / f"{section}.schema.yaml")
    assert schema == dataclass_defaults(SECTIONS[section])
    # And with the same types (an int 4 and a float 4.0 compare equal but are stored apart).
    assert _types(schema) == _types(dataclass_defaults(SECTIONS[section]))


def test_train_schema_defaults_are_train_config_defaults():
    schema = schema_defaults(SCHEMAS / "train.schema.yaml")
    defaults = dataclass_defaults(TrainConfig)
    shared = set(schema) - set(PER_RUN)
    assert shared | TRAIN_ONLY | {"d", "ridge", "init_scale"} == set(defaults)  # all checked
    for key in shared:
        assert schema[key] == defaults[key], key
    # One run per listed value: the default lists hold the dataclass's one value.
    assert schema["d"] == [defaults["d"]] and schema["ridge"] == [defaults["ridge"]]
    assert schema["init_scale"] == [defaults["init_scale"]]
    assert schema["seeds"] == [defaults["seed"]]
    assert defaults["model"] == schema["models"][0]


def test_a_validated_section_round_trips_through_its_dataclass():
    """The store's provenance records to_dict(): the section it was built from, unchanged."""
    for section, cls in SECTIONS.items():
        given = validate({}, SCHEMAS / f"{section}.schema.yaml")
        assert cls.from_dict(given).to_dict() == given
    table = validate({"top_m": 7, "tokenizer": {"kind": "word"}}, SCHEMAS / "table.schema.yaml")
    config = TableConfig.from_dict(table)
    assert config.top_m == 7 and config.tokenizer == TokenizerConfig()
    # linear: embedding entries (filled in by the schema) and optimizer entries (as given).
    linear = validate({"embeddings": {"r": {"source": "random", "d": 3}, "t": {"source": "train"}},
                       "optimizers": {"gd": {"optimizer": "gd", "lr": "auto"}}},
                      SCHEMAS / "linear.schema.yaml")
    config = LinearConfig.from_dict(linear)
    assert config.to_dict() == linear
    assert config.embeddings["r"] == EmbeddingConfig(source="random", d=3)
    assert config.embeddings["t"] == EmbeddingConfig(source="train")
    assert config.optimizers == {"gd": {"optimizer": "gd", "lr": "auto"}}
    # A run's store records the section without its two tables, as the rules passed it.
    assert config.options() == {k: v for k, v in linear.items()
                                if k not in ("embeddings", "optimizers")}


def test_from_dict_builds_nested_sections_and_refuses_unknown_keys():
    config = SvmConfig.from_dict({"solvers": ["admm"], "admm": {"anderson": 0}})
    assert config.solvers == ("admm",) and config.admm.anderson == 0
    assert config.admm.max_iter == 100_000 and config.scs == SvmConfig().scs  # the rest: defaults
    with pytest.raises(UserError, match=r"^svm\.admm\.andersen: unknown key; did you mean "
                                        r"`anderson`\?"):
        SvmConfig.from_dict({"admm": {"andersen": 3}})
    with pytest.raises(UserError, match=r"^table\.top_mm: unknown key; did you mean `top_m`\?"):
        TableConfig.from_dict({"top_mm": 3})
    with pytest.raises(UserError, match=r"^geometry\.knn: unknown key"):
        GeometryConfig.from_dict({"knn": 3})
    with pytest.raises(UserError, match=r"^svm\.scs: 3 is not a mapping"):
        from_section(SvmConfig, {"scs": 3}, "svm")


def test_linear_and_grid_point_refuse_unknown_keys_naming_the_key_path():
    cases = [
        (lambda: LinearConfig.from_dict({"fista_tl": 1e-9}),
         r"^linear\.fista_tl: unknown key; did you mean `fista_tol`\?"),
        (lambda: LinearConfig.from_dict({"embeddings": {"r": {"source": "random", "sead": 1}}}),
         r"^linear\.embeddings\.r\.sead: unknown key; did you mean `seed`\?"),
        (lambda: LinearConfig.from_dict({"embeddings": {"r": 3}}),
         r"^linear\.embeddings\.r: 3 is not a mapping"),
        (lambda: LinearConfig.from_dict({"toy_sed": 1}, where="datasets.n.linear"),
         r"^datasets\.n\.linear\.toy_sed: unknown key; did you mean `toy_seed`\?"),
        (lambda: GridPoint.from_dict({"lamda": 0.1}, where="grids.g"),
         r"^grids\.g\.lamda: unknown key; did you mean `lambda`\?"),
        # The field is lambda_ (a Python keyword), the key is lambda: the field name is refused.
        (lambda: GridPoint.from_dict({"lambda_": 0.1}),
         r"^grid point\.lambda_: unknown key; did you mean `lambda`\?"),
        (lambda: GridSpec.from_dict({"name": "g", "axes": {"d": [2]}, "defaults": {"dd": 2}}),
         r"^grids\.g\.defaults\.dd: unknown key; did you mean `d`\?"),
    ]
    for build, match in cases:
        with pytest.raises(UserError, match=match) as err:
            build()
        assert "\n" not in str(err.value)


def test_grid_point_keys_are_config_keys():
    """`lambda` is the config key of the field lambda_, both ways; the rest keep their names."""
    point = GridPoint.from_dict({"lambda": 0.25, "d": 4})
    assert (point.lambda_, point.d) == (0.25, 4)
    assert point.to_dict()["lambda"] == 0.25 and "lambda_" not in point.to_dict()
    assert GridPoint.from_dict(point.to_dict()) == point
    assert GridPoint.from_dict(point) is point  # a point passes through
    # A value keeps its type (lr 1 stays an int): the jobs' params are compared as written.
    assert type(GridPoint.from_dict({"lr": 1}).to_dict()["lr"]) is int
    spec = parse_grid("g", {"axes": {"lambda": [0.0, 0.1]}, "fixed": {"epochs": 5}},
                      datasets=["k"])
    assert GridSpec.from_dict(spec.definition()) == spec  # what the aggregate's script rebuilds
    assert spec.definition()["defaults"] == GridPoint(dataset="k").to_dict()
    assert spec.point("lambda~0.1") == GridPoint(dataset="k", lambda_=0.1, epochs=5)


def test_solve_options_per_solver_come_from_the_section():
    config = SvmConfig.from_dict({"gap_tol": 1e-6, "scs": {"max_iters": 7},
                                  "mosek": {"eps": 1e-5}})
    assert config.solve_options("admm") == {
        "solver": "admm", "gap_tol": 1e-6, "time_limit": None, "rank_rtol": 1e-6,
        "device": "auto", "residual_tol": 1e-7, "max_iter": 100_000, "check_every": 10,
        "anderson": 8, "float32_until": None}
    assert config.solve_options("auto")["max_iters"] == 7  # auto takes scs's options
    assert config.solve_options("mosek")["eps"] == 1e-5
    assert set(config.solve_options("closed_form")) == {"solver", "gap_tol", "time_limit",
                                                        "rank_rtol"}
    assert solve_options(config.to_dict(), "scs") == config.solve_options("scs")


# ---------------------------------------------------------------------------------------------
# package functions' keyword defaults == the dataclasses'

def test_solver_keyword_defaults_are_the_section_defaults():
    svm, admm, scs = SvmConfig(), SvmConfig().admm, SvmConfig().scs
    assert ANDERSON_MEMORY == admm.anderson
    expected = {"solver": svm.solvers[0], "gap_tol": svm.gap_tol, "time_limit": svm.time_limit,
                "rank_rtol": svm.rank_rtol,
                "device": admm.device, "residual_tol": admm.residual_tol,
                "max_iter": admm.max_iter, "check_every": admm.check_every,
                "anderson": admm.anderson, "float32_until": admm.float32_until,
                "eps": scs.eps, "max_iters": scs.max_iters,
                "memory_limit_mb": scs.memory_limit_mb}
    got = _keyword_defaults(solve)
    assert {k: got[k] for k in expected} == expected
    admm_defaults = _keyword_defaults(solve_admm)
    for key in ("device", "residual_tol", "max_iter", "check_every", "float32_until",
                "gap_tol", "time_limit"):
        assert admm_defaults[key] == expected[key], key
    cvx_defaults = _keyword_defaults(solve_cvx)
    for key in ("eps", "max_iters", "memory_limit_mb"):
        assert cvx_defaults[key] == expected[key], key


def test_semantics_keyword_defaults_are_the_section_defaults():
    got = _keyword_defaults(run_semantics)
    assert {k: got[k] for k in dataclass_defaults(SemanticsConfig)} == dataclass_defaults(
        SemanticsConfig)


def test_geometry_keyword_defaults_are_the_section_defaults():
    got = _keyword_defaults(run_geometry)
    assert {k: got[k] for k in ("knn_k", "rank_rtol")} == dataclass_defaults(GeometryConfig)
    # scripts/geometry.py passes the section's dataclass: an empty section is the defaults.
    assert dataclasses.asdict(GeometryConfig.from_dict({})) == {k: got[k] for k in ("knn_k",
                                                                                   "rank_rtol")}


def test_table_functions_take_the_dataclass_or_a_partial_mapping(tmp_path):
    import json

    from ntpgeom.store import open_store, write_store

    dataset = {"source": "synthetic", "synthetic": {"kind": "grammar", "n_sentences": 300}}
    a = make_table(dataset, {"top_m": 5}, progress=False)
    b = make_table(dataset, TableConfig(top_m=5), progress=False)
    assert a.m == 5 and a.contexts == b.contexts and (a.prob == b.prob).all()
    assert make_table(dataset, {}, progress=False).m == 16  # top_m None (the default): all 16
    write_store(build_table(dataset, {"top_m": 5}, progress=False), tmp_path / "t.zarr")
    recorded = json.loads(open_store(tmp_path / "t.zarr").attrs["config"])["table"]
    assert recorded == TableConfig(top_m=5).to_dict()  # every key, as used


# ---------------------------------------------------------------------------------------------
# CLI defaults == the dataclasses'

def _parsed(*argv):
    return vars(make_parser().parse_args(list(argv)))


def test_table_cli_defaults_are_table_config_defaults():
    args = _parsed("table", "corpus.txt", "--out", "t.zarr")
    default = TableConfig()
    for name in dataclass_defaults(TableConfig):
        if name != "tokenizer":
            assert args[name] == getattr(default, name), name
    assert (args["tokenizer"], args["tokenizer_path"]) == (default.tokenizer.kind,
                                                          default.tokenizer.path)


def test_solve_cli_defaults_are_svm_config_defaults():
    args = _parsed("solve", "t.zarr", "--out", "s.zarr")
    config = SvmConfig()
    for key, value in config.solve_options("admm").items():
        assert args[key] == value, key
    assert args["solver"] == config.solvers[0]  # the first listed solver: admm
    for key, value in config.solve_options("scs").items():
        assert key == "solver" or args[key] == value, key


def test_train_cli_covers_and_defaults_to_train_config():
    args = _parsed("train", "t.zarr", "--out", "r.zarr")
    defaults = dataclass_defaults(TrainConfig)
    for name, value in defaults.items():
        assert name in args, f"ntpgeom train has no --{name.replace('_', '-')}"
        assert args[name] == value, name


def test_help_shows_the_defaults(capsys):
    with pytest.raises(SystemExit):
        make_parser().parse_args(["solve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 8)" in text and "(default: 1e-08)" in text


# ---------------------------------------------------------------------------------------------
# every `--config` override the README documents

def test_command_line_booleans_only_touch_boolean_words():
    schema = SCHEMAS / "config.schema.yaml"
    for word, value in (("false", False), ("False", False), ("TRUE", True), (True, True)):
        assert command_line_booleans({"grid_batch_gpu": word}, schema)["grid_batch_gpu"] is value
    config = command_line_booleans({"grid_batch_gpu": "flase"}, schema)
    assert config["grid_batch_gpu"] == "flase"  # left for validate to refuse in one line
    with pytest.raises(UserError, match="grid_batch_gpu: 'flase' is not of type boolean"):
        validate({"datasets": {"k": {"source": "synthetic", "synthetic": {"kind": "ksubset"}}},
                  **config}, schema)


def test_every_documented_override_is_tested_here():
    """The README's `--config key=value` overrides are the ones the dry runs below check."""
    import re

    text = (ROOT / "README.md").read_text() + (ROOT / "config" / "README.md").read_text()
    documented = set(re.findall(r"--config ([A-Za-z_]+=[^`\s]+)", text))
    assert documented == {"grid_batch_gpu=false"}


@pytest.fixture(scope="module")
def grid_workdir(tmp_path_factory):
    """A working directory with the default config and a grid of two batched points."""
    work = tmp_path_factory.mktemp("override")
    shutil.copy(ROOT / "config.yaml", work)
    (work / "grid.yaml").write_text(yaml.safe_dump({"grids": {"gbg": {
        "axes": {"seed": [0, 1]}, "fixed": {"dataset": "ksubset", "epochs": 10,
                                            "checkpoints": 3}, "batch": 2}}}))
    return work


@pytest.mark.slow
@pytest.mark.parametrize("override, gpu", [
    ((), 1), (("--config", "grid_batch_gpu=false"), 0), (("--config", "grid_batch_gpu=False"), 0),
    (("--config", "grid_batch_gpu=true"), 1)])
def test_grid_batch_gpu_override_dry_runs(grid_workdir, override, gpu):
    res = run("snakemake", "--snakefile", ROOT / "Snakefile", "--directory", grid_workdir,
              "-n", "--cores", "1", "--configfile", grid_workdir / "grid.yaml", *override, "--",
              "results/grid/gbg.zarr", cwd=grid_workdir, timeout=120,
              env={"PYTHONPATH": str(ROOT / "src")})
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    out = res.stdout + res.stderr
    block = out[out.index("rule grid_batch:"):]  # the one batch of two points
    resources = next(line for line in block.splitlines() if "resources:" in line)
    assert f"gpu={gpu}" in resources, resources


# ---------------------------------------------------------------------------------------------
# grids and the linear study: their defaults live in GridPoint and LinearConfig (and its
# EmbeddingConfig); the schemas document the same values

def test_grid_point_defaults_and_choices_are_the_schema_ones():
    from ntpgeom.config import load_schema

    schema = load_schema(SCHEMAS / "grid.schema.yaml")
    point = schema["$defs"]["point"]
    # (Not schema_defaults: `dataset` documents null = the first dataset, not a string value.)
    documented = {k: v["default"] for k, v in point["properties"].items()}
    defaults = dataclass_defaults(GridPoint)
    assert documented == defaults
    for key in documented:  # key by key, with the same types
        assert (documented[key], type(documented[key])) == (defaults[key], type(defaults[key])), key
    # POINT_KEYS (what each value may be) names the same settings, in GridPoint's order.
    assert list(POINT_KEYS) == list(defaults)
    for key, (_, allowed, _) in POINT_KEYS.items():
        assert tuple(point["properties"][key].get("enum", ())) == (allowed or ()), key
    assert schema["$defs"]["grid"]["properties"]["axes"]["propertyNames"]["enum"] == list(
        POINT_KEYS)
    grid = schema["$defs"]["grid"]["properties"]
    spec = parse_grid("g", {"axes": {"seed": [0, 1]}}, datasets=["k"])
    assert (spec.batch, spec.figure) == (grid["batch"]["default"], grid["figure"]["default"])
    assert (GridSpec.batch, GridSpec.figure) == (spec.batch, spec.figure)
    # parse_grid fills in only the dataset: the first one.
    assert spec.defaults == GridPoint(dataset="k")


def test_linear_embedding_defaults_are_the_schema_ones():
    """An entry of `linear.embeddings` (schema: additionalProperties) against EmbeddingConfig,
    key by key; `source` has no default (the schema requires it)."""
    from ntpgeom.config import load_schema

    entry = load_schema(SCHEMAS / "linear.schema.yaml")["properties"]["embeddings"][
        "additionalProperties"]
    assert entry["required"] == ["source"] and "default" not in entry["properties"]["source"]
    documented = {k: v["default"] for k, v in entry["properties"].items() if k != "source"}
    defaults = dataclass_defaults(EmbeddingConfig)
    assert set(defaults) == set(entry["properties"])
    assert documented == {k: v for k, v in defaults.items() if k != "source"}
    assert _types(documented) == _types({k: defaults[k] for k in documented})
    # A validated entry is the dataclass of its source and nothing else.
    filled = validate({"embeddings": {"e": {"source": "svm"}}}, SCHEMAS / "linear.schema.yaml")
    assert EmbeddingConfig.from_dict(filled["embeddings"]["e"]) == EmbeddingConfig(source="svm")


def test_linear_reference_defaults_are_the_schema_ones():
    schema = schema_defaults(SCHEMAS / "linear.schema.yaml")
    got = _keyword_defaults(linear_reference)
    for key in ("eps", "fista_tol", "fista_max_iter", "rank_rtol"):
        assert got[key] == schema[key], key
        assert got[key] == getattr(LinearConfig(), key), key
    assert list(got["solvers"]) == schema["solvers"]
    assert got["solvers"] == LinearConfig().solvers


def test_linear_functions_take_the_dataclass_or_a_partial_mapping():
    """linear_reference_for and train_config read LinearConfig; a mapping of some of its keys
    takes the defaults for the rest (as an empty section would)."""
    from ntpgeom.data.synthetic import random_table

    table = random_table(5, 6, support_size=2, n=60, zipf_a=0.0, seed=0)
    spec = {"source": "random", "d": 8, "seed": 1}
    a = linear_reference_for(table, embedding=spec, linear={"solvers": ["clarabel"]})
    b = linear_reference_for(table, embedding=EmbeddingConfig(source="random", d=8, seed=1),
                             linear=LinearConfig(solvers=("clarabel",)))
    timings = ("wall_seconds", "solve_seconds")
    assert a.drop_attrs().identical(b.drop_attrs())
    assert ({k: v for k, v in a.attrs.items() if k not in timings}
            == {k: v for k, v in b.attrs.items() if k not in timings})
    assert (a.attrs["eps"], a.attrs["fista_tol"]) == (LinearConfig.eps, LinearConfig.fista_tol)
    gd = {"optimizer": "gd", "lr": 0.1}
    config = train_config(gd, d=8, L_smooth=1.0, linear={})
    assert config == train_config(gd, d=8, L_smooth=1.0, linear=LinearConfig())
    linear = LinearConfig()
    assert (config.epochs, config.seed, config.dtype, config.checkpoints_per_decade,
            config.device) == (linear.epochs, linear.seed, linear.dtype,
                               linear.checkpoints_per_decade, linear.device)
    with pytest.raises(UserError, match=r"^linear\.epoch: unknown key; did you mean `epochs`\?"):
        train_config(gd, d=8, L_smooth=1.0, linear={"epoch": 3})


def test_sections_build_without_jsonschema():
    """The GPU machine has no jsonschema (benchmarks/gpu_check.py): building the sections, and
    every module that holds one, must not import it (ntpgeom.config imports it to validate only)."""
    import subprocess
    import sys

    code = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("jsonschema", "snakemake", "cvxpy"):
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, Block())
from ntpgeom.data.build import TableConfig
from ntpgeom.metrics.geometry import GeometryConfig
from ntpgeom.studies.grid import GridPoint
from ntpgeom.studies.linear import LinearConfig
from ntpgeom.theory.svm import SvmConfig
from ntpgeom.theory.svm.admm import solve_admm
print(SvmConfig.from_dict({"admm": {"anderson": 3}}).solve_options("admm")["anderson"],
      TableConfig.from_dict({"top_m": 4}).top_m, GeometryConfig().knn_k,
      LinearConfig.from_dict({"embeddings": {"r": {"source": "random"}}}).embeddings["r"].seed,
      GridPoint.from_dict({"lambda": 0.5}).lambda_)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT / "src")}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["3", "4", "5", "0", "0.5"]
