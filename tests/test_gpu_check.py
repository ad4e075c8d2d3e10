"""The GPU check (benchmarks/gpu_check.py) on the CPU side: the clean skip without CUDA, its JSON,
a failing step recorded without stopping the others, the pipeline step with only the packages the
GPU machine has; and, on CUDA, CPU and GPU training agreeing to float tolerance."""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ntpgeom.data.synthetic import ksubset_table
from ntpgeom.metrics.core import compare
from ntpgeom.theory.reference import centered_support, factorize
from ntpgeom.train.config import TrainConfig
from ntpgeom.train.engine import fit

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "benchmarks" / "gpu_check.py"
REPORT_KEYS = {"schema", "device", "packages", "torch", "cuda", "cudnn", "python", "host", "date",
               "steps", "status", "all_passed"}
STEP_KEYS = {"name", "status", "returncode", "seconds", "timeout_s", "figures", "error_tail"}
FIGURE_KEYS = {"name", "value", "unit", "goal", "goal_kind", "pass"}
#: What the GPU machine lacks and the check does not carry (zarr is carried as wheels).
NOT_ON_DEVICE = ("cvxpy", "scs", "clarabel", "osqp", "snakemake", "jsonschema")
BLOCK = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {NOT_ON_DEVICE!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not on the GPU machine)")
sys.meta_path.insert(0, Block())
"""


@pytest.fixture(scope="module")
def check():
    spec = importlib.util.spec_from_file_location("gpu_check", CHECK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), **extra}


def test_without_cuda_the_check_skips_cleanly(tmp_path):
    """CUDA hidden (also on a GPU machine): exit 0 in seconds, the reason on the console and in
    a JSON under the temp dir, not under benchmarks/results/."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(CHECK)], cwd=ROOT, capture_output=True, text=True,
                          env=env(CUDA_VISIBLE_DEVICES="", TMPDIR=str(tmp_path)), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert time.perf_counter() - start < 60
    assert "no CUDA device: skipped" in proc.stdout
    (written,) = tmp_path.glob("ntpgeom-gpu-check-*.json")
    report = json.loads(written.read_text())
    assert set(report) == REPORT_KEYS | {"reason"}
    assert report["schema"] == "ntpgeom-gpu-check/1" and report["status"] == "skipped"
    assert report["reason"] == "no CUDA device: skipped" and report["device"] is None
    assert report["steps"] == [] and report["all_passed"] is None
    assert report["torch"] == torch.__version__
    assert report["packages"]["numpy"] == np.__version__


def test_a_failing_step_is_recorded_with_its_error_tail(check):
    """A step that raises gives status ``failed``, its exit status and the end of its traceback;
    the driver goes on (spawn returns instead of raising)."""
    step = check.spawn("no_such_step", timeout=60)
    assert set(step) == STEP_KEYS
    assert step["status"] == "failed" and step["returncode"] == 1 and step["figures"] == []
    assert "unknown step 'no_such_step'" in step["error_tail"]
    with pytest.raises(SystemExit):
        check.main(["--steps", "pytest,nope"])


def test_a_step_past_its_timeout_is_killed_and_recorded(check):
    """0.2 s is less than the step's Python start-up and imports: its process group is killed."""
    step = check.spawn("pipeline", timeout=0.2)
    assert step["status"] == "timeout" and step["returncode"] == -9
    assert step["seconds"] < 30 and step["figures"] == []


def test_figures_pass_only_within_their_goal(check):
    assert check.figure("t", 59.9, "s", 60.0)["pass"] is True
    assert check.figure("t", 60.1, "s", 60.0)["pass"] is False
    assert check.figure("t", None, "s", 60.0)["pass"] is False  # not measured is not met
    assert check.figure("n", 0, "tests", 0, "==")["pass"] is True
    assert check.figure("n", 1, "tests", 0, "==")["pass"] is False
    assert check.figure("x", 1.0, "s")["pass"] is None and set(check.figure("x", 1, "")) == \
        FIGURE_KEYS
    # every step has a goal figure or a pass/fail of its own
    assert set(check.STEPS) == {"pytest", "transformer_30k", "ufm_30k", "admm_r104x400",
                                "admm_r500x3000", "admm_r104x100000", "batched", "pipeline"}


@pytest.mark.parametrize("name", ["table", "svm", "train", "geometry"])
def test_schema_defaults_are_the_workflows(check, name):
    """with_defaults (no jsonschema on the GPU machine) against snakemake's validate, which fills
    the defaults of the same schema: equal for the default config's section and an empty one."""
    from snakemake.utils import validate

    schema_path = ROOT / "schemas" / f"{name}.schema.yaml"
    schema = yaml.safe_load(schema_path.read_text())
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    for section in (config.get(name, {}), {}):
        expected = copy.deepcopy(section)
        validate(expected, schema=str(schema_path))
        assert check.with_defaults(section, schema) == expected


@pytest.mark.slow
def test_pipeline_step_runs_with_only_the_gpu_machines_packages(tmp_path):
    """The pipeline step on CPU (30 epochs) in a process where what the GPU machine lacks cannot
    be imported; and `pytest -m gpu` collects the check's test files there too."""
    code = BLOCK + f"""
import importlib.util, json
from pathlib import Path
spec = importlib.util.spec_from_file_location("gpu_check", {str(CHECK)!r})
check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check)
print(json.dumps(check.pipeline(Path({str(tmp_path)!r}), device="cpu", epochs=30)))
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env=env(), timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = {f["name"]: f for f in json.loads(proc.stdout.splitlines()[-1])}
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    for dataset in config["datasets"]:
        assert figures[f"pipeline_{dataset}_admm_device"]["pass"]
        assert (tmp_path / dataset / "svm" / "admm.zarr").is_dir()
        for model in config["train"]["models"]:
            tag = f"pipeline_{dataset}_{model}_d32-seed0"
            assert figures[f"{tag}_device"]["value"] == "cpu"
            assert 0 < figures[f"{tag}_ce_minus_entropy"]["value"] < math.log(30)
            assert (tmp_path / dataset / "geometry" / model / "d32-seed0.zarr").is_dir()
    files = sorted(str(p) for p in (ROOT / "tests").glob("test_*.py")
                   if "mark.gpu" in p.read_text())
    collect = BLOCK + f"import pytest; sys.exit(pytest.main(['--collect-only', '-q', '-m', "\
                      f"'gpu', '-p', 'no:cacheprovider', *{files!r}]))"
    proc = subprocess.run([sys.executable, "-c", collect], cwd=ROOT, capture_output=True,
                          text=True, env=env(), timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "error" not in proc.stdout.lower()


# -- on CUDA: the same run on CPU and GPU --------------------------------------------------------
def _run(model: str, device: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """CE − H per checkpoint (computed by the trainer, in float64) and the direction distances to
    L^mm (= S̄ in closed form on k-subset supports) of the checkpoints' W, H."""
    table = ksubset_table(6, 2)
    S = table.S()
    L_mm = centered_support(S)
    W_mm, H_mm, _ = factorize(L_mm)
    # lr and gamma are powers of two, exact in float32: see test_cpu_and_cuda_runs_agree
    config = TrainConfig(model=model, d=16, epochs=300, lr=2**-7, gamma=0.5, milestones=(150,),
                         n_heads=2, n_layers=2, device=device, dtype="float64", threads=1,
                         save_every_s=1e9)
    traj = fit(table, config, progress=False)
    excess = np.stack(traj.metrics)[:, 0] - table.entropy
    dists: dict[str, list[float]] = {k: [] for k in ("dist_L", "dist_L_perp", "dist_gram_W",
                                                     "dist_gram_H")}
    for W, H in zip(traj.W, traj.H, strict=True):
        W, H = W.astype(float), H.astype(float)
        out = compare(W @ H, W, H, {"L": L_mm, "W": W_mm, "H": H_mm}, S=S)
        for key in dists:
            dists[key].append(out[key])
    return excess, {k: np.array(v) for k, v in dists.items()}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("model", ["ufm", "transformer"])
def test_cpu_and_cuda_runs_agree(model):
    """The same config on CPU and CUDA (CUDA graph, fused AdamW), in float64.

    Tolerances: in float64 (no TF32) the two differ only by the order of reductions, ~1e-16
    relative per operation. Training amplifies that: on CPU, one vs two threads (another
    reduction order) moved the transformer's CE − H by 1e-11 relative over these 300 steps, so
    rtol 1e-8 leaves a 1000x margin. The distances are computed from the checkpoints the
    trainer keeps (float64 here, formerly float32): atol 1e-6 on values of ~0.1-0.3. In
    float32 the comparison would mean little: CUDA's TF32 matmuls round at ~5e-4, and on CPU
    float32 against float64 alone moved the transformer's CE − H by 8e-3 relative.

    The LR (2⁻⁷) and γ (0.5) are exact in float32 because the CUDA-graph path holds the LR in a
    float32 tensor (``Runs.lr_tensors``) also in float64 runs: lr 1e-2 becomes 1e-2·(1 − 2e-8),
    which alone moved this float64 transformer's CE − H by 2.6e-4 relative on CPU. At such an LR
    the test would measure that rounding, not the devices.
    """
    cpu_excess, cpu_dists = _run(model, "cpu")
    gpu_excess, gpu_dists = _run(model, "cuda")
    assert np.all(cpu_excess > 0)
    np.testing.assert_allclose(gpu_excess, cpu_excess, rtol=1e-8)
    for key in cpu_dists:
        np.testing.assert_allclose(gpu_dists[key], cpu_dists[key], rtol=0, atol=1e-6,
                                   err_msg=key)
