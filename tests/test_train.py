"""Tests of the training engine (ntpgeom.train): the distinct-context loss against the per-sample
loss and a closed-form gradient, convergence CE → H, determinism, resume (also after a real
SIGKILL), the guards, the store, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ntpgeom.data.synthetic import ksubset_table, random_table
from ntpgeom.data.table import Table
from ntpgeom.errors import UserError
from ntpgeom.train import engine as E
from ntpgeom.train import stage
from ntpgeom.train.config import TrainConfig, checkpoint_steps
from ntpgeom.train.engine import Runs, fit, make_trainer
from ntpgeom.train.objective import Objective
from ntpgeom.train.trajectory import Trajectory, checkpoint_path

CPU = torch.device("cpu")
requires_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.fixture(scope="module")
def table() -> Table:
    # 6 contexts of 3 tokens over 7 next tokens, supports of 1..4, counts 1..4: n ≈ 6·2.5·2.5.
    return random_table(V=7, m=6, max_support=4, seed=3, context_length=3)


def tiny(model: str = "ufm", **kw) -> TrainConfig:
    base = {"model": model, "d": 8, "epochs": 40, "lr": 1e-2, "milestones": (), "device": "cpu",
            "n_heads": 2, "n_layers": 2, "threads": 1}
    return TrainConfig(**{**base, **kw})


def _objective(table: Table, model: str, form: str, ridge: float = 0.0) -> Objective:
    # Q is built from the table in float64 (a float32 Q would cost ~1e-8 of the agreement).
    model = make_trainer(table, [tiny(model, loss=form, ridge=ridge)], CPU).model.double()
    return Objective(model, table, form, ridge, dtype=torch.float64)


# -- the loss --------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["ufm", "transformer"])
def test_distinct_loss_equals_per_sample_loss_and_gradients(table, model):
    """The paper code's mean over n samples and the π/P-weighted CE over m contexts: one function.

    Same initialisation (seeded), float64: the two sums differ in order only, so value and every
    gradient agree to ~1e-15 relative; 1e-11 leaves room for accumulation over n terms.
    """
    assert table.n > 2 * table.m  # the per-sample form really repeats contexts
    grads, values = [], []
    for form in ("distinct", "per_sample"):
        obj = _objective(table, model, form)
        loss, metrics = obj()
        loss.backward()
        values.append((loss.item(), metrics.numpy()))
        grads.append({k: p.grad.clone() for k, p in obj.model.named_parameters()})
    assert values[0][0] == pytest.approx(values[1][0], rel=1e-12)
    np.testing.assert_allclose(values[0][1], values[1][1], rtol=1e-12)
    assert grads[0].keys() == grads[1].keys()
    for k in grads[0]:
        torch.testing.assert_close(grads[0][k], grads[1][k], rtol=1e-11, atol=1e-14)
    assert any(g.abs().max() > 1e-3 for g in grads[0].values())  # not a vacuous comparison


def test_ufm_loss_and_gradient_match_closed_form_with_ridge(table):
    """Independent NumPy reference: CE = −Σ π_j P_zj log softmax(L)_zj with L = W H, and
    ∇_L = (softmax(L) − P) diag(π), ∇W = ∇_L Hᵀ + 2λW, ∇H = Wᵀ ∇_L + 2λH."""
    lam = 0.03
    obj = _objective(table, "ufm", "distinct", ridge=lam)
    loss, metrics = obj()
    loss.backward()
    W = obj.model.W.detach().numpy()
    H = obj.model.H().detach().numpy()
    L = W @ H
    logq = L - L.max(0) - np.log(np.exp(L - L.max(0)).sum(0))
    P, pi = table.P(), table.pi
    ce = -(pi * (P * logq).sum(0)).sum()
    G = (np.exp(logq) - P) * pi
    assert metrics[0].item() == pytest.approx(ce, rel=1e-13)
    assert metrics[0].item() - table.entropy > 0  # CE ≥ H
    assert loss.item() == pytest.approx(ce + lam * ((W**2).sum() + (H**2).sum()), rel=1e-13)
    np.testing.assert_allclose(obj.model.W.grad.numpy(), G @ H.T + 2 * lam * W, rtol=1e-11,
                               atol=1e-15)
    np.testing.assert_allclose(obj.model.embed.weight.grad.numpy(), W.T @ G + 2 * lam * H,
                               rtol=1e-11, atol=1e-15)


def test_lr_schedule_matches_torch_multisteplr():
    config = TrainConfig(lr=0.5, milestones=(3, 7, 8), gamma=0.4)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[3, 7, 8], gamma=0.4)
    for step in range(12):
        assert config.lr_at(step) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-15)
        opt.step()
        sched.step()


def test_gd_step_is_plain_gradient_descent(table):
    trainer = make_trainer(table, [tiny(optimizer="gd", lr=0.3, weight_decay=0.0)], CPU)
    before = {k: p.detach().clone() for k, p in trainer.model.named_parameters()}
    trainer.advance()
    for k, p in trainer.model.named_parameters():
        torch.testing.assert_close(p.detach(), before[k] - 0.3 * p.grad, rtol=0, atol=1e-7)


def test_checkpoint_steps_are_log_spaced():
    assert checkpoint_steps(30_000) == [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000,
                                          5000, 10000, 20000, 30000]
    assert checkpoint_steps(7) == [0, 1, 2, 5, 7]
    assert checkpoint_steps(0) == [0]
    assert checkpoint_steps(100, per_decade=4) == [0, 1, 2, 3, 6, 10, 18, 32, 56, 100]


# -- training ------------------------------------------------------------------------------------
@pytest.mark.parametrize("model, bound", [("ufm", 2e-3), ("transformer", 2e-2)])
def test_training_drives_ce_to_entropy(table, model, bound):
    """AdamW lr 1e-2 on the tiny table: CE − H falls from O(1) to near 0 (the theorem's (i)).

    Bounds are ~3x the values measured at 300 steps (UFM 6e-4, transformer 6e-3), so an actual
    stall fails while float noise does not.
    """
    traj = fit(table, tiny(model, epochs=300, d=16), progress=False)
    gap = np.stack(traj.trace)[:, 0] - table.entropy
    assert gap.min() > -1e-6  # CE ≥ H up to float32 rounding
    assert gap[0] > 0.3
    assert gap[-1] < bound
    assert np.mean(gap[-20:]) < np.mean(gap[100:120]) < np.mean(gap[:20])
    norms = np.stack(traj.metrics)[:, 1]
    assert norms[-1] > norms[0]  # ‖W‖ grows as the logits separate (Lemma 2)


def test_gd_decreases_ce_monotonically(table):
    # A small enough step on a smooth loss: every GD step decreases CE.
    traj = fit(table, tiny(optimizer="gd", lr=0.5, weight_decay=0.0, epochs=200), progress=False)
    ce = np.stack(traj.trace)[:, 0]
    assert (np.diff(ce) < 0).all()


@pytest.mark.parametrize("model", ["ufm", "transformer"])
def test_cpu_rerun_is_bit_identical(table, model):
    a = fit(table, tiny(model, epochs=25), progress=False)
    b = fit(table, tiny(model, epochs=25), progress=False)
    assert a.step == b.step == [0, 1, 2, 5, 10, 20, 25]
    for x, y in zip(a.W + a.H + a.trace, b.W + b.H + b.trace, strict=True):
        assert np.array_equal(x, y)
    c = fit(table, tiny(model, epochs=25, seed=1), progress=False)
    assert not np.array_equal(a.W[0], c.W[0])  # the seed matters


def _assert_same_trajectory(a: Trajectory, b: Trajectory) -> None:
    assert a.step == b.step and a.trace_step == b.trace_step
    for name in ("metrics", "W", "H", "H_layer", "trace"):
        for x, y in zip(getattr(a, name), getattr(b, name), strict=True):
            assert np.array_equal(x, y), name


@pytest.mark.parametrize("model", ["ufm", "transformer"])
def test_resume_after_interrupt_is_bit_identical(table, model, tmp_path, monkeypatch):
    config = tiny(model, epochs=60, save_every_s=1e9, milestones=(15, 30), optimizer="adamw")
    ckpt = tmp_path / "run.ckpt.pt"
    update = Runs._update

    def crash_at_33(self):
        # Interrupted in the middle of the update of step 33: the parameters are no state of the
        # run, so the interrupt does not save and the last checkpoint stands.
        if self.step == 33:
            self.dirty = True  # as _update marks it before touching the parameters
            raise KeyboardInterrupt
        return update(self)

    monkeypatch.setattr(Runs, "_update", crash_at_33)
    with pytest.raises(KeyboardInterrupt):
        fit(table, config, checkpoint=ckpt, progress=False)
    monkeypatch.setattr(Runs, "_update", update)
    saved = torch.load(ckpt, weights_only=True)
    assert saved["trainer"]["step"] == 20  # the last checkpoint step before the crash
    resumed = fit(table, config, checkpoint=ckpt, progress=False)
    _assert_same_trajectory(resumed, fit(table, config, progress=False))


@pytest.mark.parametrize("model", ["ufm", "transformer"])
def test_interrupt_between_steps_saves_and_resumes_bit_identical(table, model, tmp_path,
                                                                 monkeypatch):
    """Ctrl-C (any exception) between two steps saves a checkpoint at that step (issue 12)."""
    config = tiny(model, epochs=40, save_every_s=1e9, optimizer="adamw")
    ckpt = tmp_path / "run.ckpt.pt"
    advance = Runs.advance

    def interrupt_at_33(self):
        if self.step == 33:
            raise KeyboardInterrupt
        return advance(self)

    monkeypatch.setattr(Runs, "advance", interrupt_at_33)
    with pytest.raises(KeyboardInterrupt):
        fit(table, config, checkpoint=ckpt, progress=False)
    monkeypatch.setattr(Runs, "advance", advance)
    assert torch.load(ckpt, weights_only=True)["trainer"]["step"] == 33  # not 20: saved on exit
    _assert_same_trajectory(fit(table, config, checkpoint=ckpt, progress=False),
                            fit(table, config, progress=False))


@pytest.mark.parametrize("model", ["ufm", "transformer"])
def test_divergence_stops_with_one_line_and_no_store(table, model, tmp_path):
    """GD with a huge step overflows: one UserError naming the step and the fix, no store and no
    checkpoint of the diverged state."""
    config = tiny(model, optimizer="gd", lr=1e30, weight_decay=0.0, epochs=50)
    out = tmp_path / "run.zarr"
    with pytest.raises(UserError, match=r"^training diverged: the loss or the parameters are not "
                       r"finite at step \d+ \(optimizer gd, lr 1e\+30\); nothing written: use a "
                       r"smaller learning rate") as e:
        stage.train(table, config, out=out, progress=False)
    assert "\n" not in str(e.value)
    assert not out.exists() and not checkpoint_path(out).exists()


def test_batch_equals_single_runs_bit_for_bit(table):
    """B UFM runs with their own seed, LR, optimizer and λ in one vmap-ed step: each is, bit for
    bit, the run trained alone (the training stage's run of its settings)."""
    configs = [tiny(seed=0), tiny(seed=1, lr=0.05, milestones=(10,)),
               tiny(seed=2, optimizer="gd", lr=0.3, ridge=0.01),
               tiny(seed=3, optimizer="adam", weight_decay=1e-3, ridge=0.02)]
    together = E.fit_runs(table, configs, progress=False)
    for config, run in zip(configs, together, strict=True):
        _assert_same_trajectory(run, fit(table, config, progress=False))


@pytest.mark.filterwarnings("ignore:There is a performance drop")  # sdpa: vmap falls back to a loop
def test_batched_transformer_agrees_with_the_module_backend(table):
    """The vmap backend runs any model; for the transformer its batched reductions run in another
    order than the module's, so 30 AdamW steps agree to float32 rounding (measured ~1e-6), not bit
    for bit: grids train transformer points one by one."""
    configs = [tiny("transformer", epochs=30, seed=s) for s in (0, 1)]
    batched = E.fit_runs(table, configs, progress=False, batched=True)
    for config, run in zip(configs, batched, strict=True):
        alone = fit(table, config, progress=False)
        np.testing.assert_allclose(np.stack(run.trace), np.stack(alone.trace), rtol=1e-4,
                                   atol=1e-5)
        assert not np.array_equal(run.W[0], batched[1 - configs.index(config)].W[0])


def test_checkpoint_from_other_config_is_refused(table, tmp_path):
    ckpt = tmp_path / "run.ckpt.pt"
    fit(table, tiny(epochs=5), checkpoint=ckpt, progress=False)
    with pytest.raises(UserError, match=r"different config \(lr: 0.01 there, 0.02 now\)"):
        fit(table, tiny(epochs=5, lr=2e-2), checkpoint=ckpt, progress=False)
    other = random_table(V=7, m=6, max_support=4, seed=4, context_length=3)
    with pytest.raises(UserError, match="different config.*table"):
        fit(other, tiny(epochs=5), checkpoint=ckpt, progress=False)
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a readable training checkpoint"):
        fit(table, tiny(epochs=5), checkpoint=ckpt, progress=False)


# -- the store -----------------------------------------------------------------------------------
def test_store_follows_the_contract(table, tmp_path):
    from ntpgeom.store import open_store

    out = tmp_path / "train" / "transformer" / "d8-seed0.zarr"
    stage.train(table, tiny("transformer", epochs=12, trace_every=5), out=out, progress=False)
    assert not checkpoint_path(out).exists()  # removed once the store is in place
    ds = open_store(out)
    assert list(ds["step"].values) == [0, 1, 2, 5, 10, 12]
    assert list(ds["trace_step"].values) == [0, 5, 10, 12]
    assert ds["W"].dims == ("step", "token", "dim") and ds["W"].shape == (6, table.V, 8)
    assert ds["H"].dims == ("step", "dim", "context") and ds["H"].shape == (6, 8, table.m)
    assert ds["logits"].dims == ("step", "token", "context")
    for name in ("loss", "ce_minus_entropy", "norm_W", "norm_H"):
        assert ds[name].dims == ("step",) and ds[f"trace_{name}"].dims == ("trace_step",)
    assert list(ds["token"].values) == table.tokens
    assert list(ds["context"].values) == table.contexts
    W, H = ds["W"].values.astype(float), ds["H"].values.astype(float)
    np.testing.assert_allclose(ds["logits"].values, W @ H, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ds["norm_W"], np.linalg.norm(W, axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(ds["norm_H"], np.linalg.norm(H, axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(ds["ce_minus_entropy"], ds["loss"] - table.entropy, rtol=1e-12)
    # The checkpoint series and the dense series agree where they overlap.
    np.testing.assert_array_equal(ds["loss"].sel(step=[0, 5, 10, 12]), ds["trace_loss"])
    attrs = ds.attrs
    assert attrs["model"] == "transformer" and attrs["d"] == 8 and attrs["seed"] == 0
    assert attrs["device"] == "cpu" and attrs["torch_version"] == torch.__version__
    assert attrs["entropy"] == pytest.approx(table.entropy)
    assert attrs["lr"] == 1e-2 and attrs["milestones"] == [] and attrs["n_heads"] == 2
    assert json.loads(attrs["config"])["epochs"] == 12 and "ntpgeom_version" in attrs


def test_cli_trains_and_reports_errors(table, tmp_path, capsys):
    from ntpgeom.cli import main
    from ntpgeom.store import open_store

    table.save(tmp_path / "table.zarr")
    out = tmp_path / "run.zarr"
    assert main(["train", str(tmp_path / "table.zarr"), "--out", str(out), "--epochs", "3",
                 "--d", "4", "--device", "cpu", "--no-progress"]) == 0
    assert open_store(out).attrs["d"] == 4
    assert main(["train", str(tmp_path / "table.zarr"), "--out", str(out), "--d", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("ntpgeom train: error: train.d: the embedding width must be")


# -- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize("settings, match", [
    ({"d": 0}, r"train\.d: the embedding width must be an integer ≥ 1; got 0"),
    ({"lr": -1e-3}, r"train\.lr: must be a finite number ≥ 0; got -0\.001"),
    ({"optimizer": "sgd"}, r"train\.optimizer: must be one of adamw, gd, ngd, adam"),
    ({"model": "transformer", "d": 8, "n_heads": 6}, r"train\.d: is too narrow for 6 heads"),
    ({"epochs": 10, "learning_rate": 1}, r"train: unknown setting\(s\) learning_rate; valid:"),
    ({"milestones": [0]}, r"train\.milestones: must be steps ≥ 1"),
])
def test_bad_settings_are_one_line_user_errors(settings, match):
    with pytest.raises(UserError, match=match) as info:
        TrainConfig.from_dict(settings)
    assert "\n" not in str(info.value)


def test_empty_table_is_refused():
    empty = Table.from_pairs([], {})
    with pytest.raises(UserError, match=r"no contexts \(m = 0\)"):
        fit(empty, tiny(), progress=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda(table, caplog):
    with pytest.raises(UserError, match=r"train\.device: 'cuda' requested but .* no CUDA device"):
        fit(table, tiny(device="cuda"), progress=False)
    with pytest.raises(UserError, match="graph: on needs a CUDA device"):
        fit(table, tiny(graph="on"), progress=False)
    with caplog.at_level("INFO", logger="ntpgeom.train.config"):
        traj = fit(table, tiny(device="auto", epochs=2), progress=False)
    assert traj.device == "cpu" and "no CUDA device, training on CPU" in caplog.text


# -- a real kill -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_resume_after_sigkill_gives_the_unkilled_store(tmp_path):
    from ntpgeom.store import open_store

    table = ksubset_table(6, 2)
    table.save(tmp_path / "table.zarr")
    # Long enough that the run is still going when the kill lands right after the first save,
    # however quiet the machine (a 0.5 s wait after 800 steps raced with the end of the run).
    args = ["train", str(tmp_path / "table.zarr"), "--model", "ufm", "--d", "8", "--epochs",
            "3000", "--lr", "0.01", "--milestones", "1500", "--device", "cpu", "--threads", "1",
            # every ~20 ms: the kill lands after some save, whatever the machine's speed
            "--save-every-s", "0.02", "--no-progress"]

    def run(out: Path, kill_after: float | None = None) -> None:
        cmd = [sys.executable, "-m", "ntpgeom.cli", *args, "--out", str(out)]
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        if kill_after is not None:
            ckpt = checkpoint_path(out)
            deadline = time.monotonic() + 60
            while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(kill_after)
            assert proc.poll() is None, "the run ended before it could be killed"
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            assert proc.returncode == -signal.SIGKILL
            return
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err

    killed = tmp_path / "killed" / "d8-seed0.zarr"
    run(killed, kill_after=0.05)
    assert not killed.exists()  # killed mid-run
    step = torch.load(checkpoint_path(killed), weights_only=True)["trainer"]["step"]
    assert 0 < step < 3000
    run(killed)  # resumes
    clean = tmp_path / "clean" / "d8-seed0.zarr"
    run(clean)
    a, b = open_store(killed), open_store(clean)
    assert set(a.variables) == set(b.variables)
    for name in a.variables:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    skip = {"wall_seconds"}
    assert {k: v for k, v in a.attrs.items() if k not in skip} == \
        {k: v for k, v in b.attrs.items() if k not in skip}
    assert a.attrs["wall_seconds"] > 0


# -- GPU -------------------------------------------------------------------------------------------
@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("model", ["ufm", "transformer"])
def test_cuda_graph_matches_eager(table, model):
    """Graph replay runs the same kernels as eager CUDA: the trajectories agree to float32/TF32
    rounding (1e-4 relative over 50 AdamW steps with a milestone at 20, which checks the LR
    tensor is followed inside the graph)."""
    config = tiny(model, device="cuda", epochs=50, milestones=(20,), gamma=0.1)
    eager = fit(table, TrainConfig(**{**config.to_dict(), "graph": "off",
                                      "betas": (0.9, 0.999), "milestones": (20,)}),
                progress=False)
    graph = fit(table, config, progress=False)
    assert graph.graph and not eager.graph
    np.testing.assert_allclose(np.stack(graph.trace), np.stack(eager.trace), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(graph.W[-1], eager.W[-1], rtol=1e-3, atol=1e-4)


@pytest.mark.gpu
@requires_gpu
def test_cuda_graph_resume(table, tmp_path, monkeypatch):
    config = tiny("transformer", device="cuda", epochs=40, save_every_s=1e9)
    ckpt = tmp_path / "run.ckpt.pt"
    advance = Runs.advance

    def crash(self):
        if self.step == 27:
            raise KeyboardInterrupt
        return advance(self)

    monkeypatch.setattr(Runs, "advance", crash)
    with pytest.raises(KeyboardInterrupt):
        fit(table, config, checkpoint=ckpt, progress=False)
    monkeypatch.setattr(Runs, "advance", advance)
    resumed = fit(table, config, checkpoint=ckpt, progress=False)
    full = fit(table, config, progress=False)
    np.testing.assert_allclose(np.stack(resumed.trace), np.stack(full.trace), rtol=1e-4,
                               atol=1e-5)
    assert os.path.exists(ckpt)
