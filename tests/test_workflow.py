"""The Snakemake workflow end to end on tiny configs (marked slow; still part of `make test`)."""

import shutil

import pytest
import yaml
from conftest import ROOT, run

from ntpgeom.data.table import load

pytestmark = pytest.mark.slow


def workdir(tmp_path, config: dict):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    return cfg


def snakemake(tmp_path, cfg, *targets, timeout=600):
    return run("snakemake", "--snakefile", ROOT / "Snakefile", "--directory", tmp_path,
               "--configfile", cfg, "--cores", "2", "--workflow-profile", ROOT / "profiles" /
               "default", *targets, timeout=timeout)


def test_table_from_the_tinystories_sample(sample, tmp_path):
    cfg = workdir(tmp_path, {
        "datasets": {"ts": {"source": "text", "text": {"path": str(sample)},
                            "table": {"top_m": 100, "min_support": 2}},  # a dataset override
                     "grammar": {"source": "synthetic", "synthetic": {"kind": "grammar"}}},
        "table": {"context_length": 5, "min_count": 3},
    })
    res = snakemake(tmp_path, cfg, "results/ts/table.zarr", "results/grammar/table.zarr")
    assert res.returncode == 0, res.stderr[-3000:]
    t = load(tmp_path / "results/ts/table.zarr")
    assert t.m == 100 and (t.support_size >= 2).all()
    g = load(tmp_path / "results/grammar/table.zarr")
    assert g.m == 16 and (g.support_size == 3).all()
    assert (tmp_path / "logs/ts/table.log").exists()


def test_bad_config_is_rejected_with_the_setting_named(tmp_path):
    cfg = workdir(tmp_path, {"datasets": {"x": {"source": "synthetic",
                                                "synthetic": {"kind": "grammar"}}},
                             "table": {"top_m": -3}})
    res = snakemake(tmp_path, cfg, "results/x/table.zarr")
    assert res.returncode != 0
    assert "table" in res.stderr and "-3" in res.stderr
    assert not (tmp_path / "results").exists()


def test_user_error_in_a_rule_is_one_line_in_its_log(tmp_path):
    missing = tmp_path / "missing.txt"  # absolute: a relative one is from the workflow folder
    cfg = workdir(tmp_path, {"datasets": {"gone": {"source": "text",
                                                   "text": {"path": str(missing)}}}})
    res = snakemake(tmp_path, cfg, "results/gone/table.zarr")
    assert res.returncode != 0
    log = (tmp_path / "logs/gone/table.log").read_text()
    assert f"ntpgeom: error: text.path: {missing} does not exist" in log
    assert "Traceback" not in log
    assert not (tmp_path / "results/gone/table.zarr").exists()


def test_tables_only_dry_run_of_the_default_config(tmp_path):
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    res = snakemake(tmp_path, tmp_path / "config.yaml", "-n")
    assert res.returncode == 0, res.stderr[-3000:]
