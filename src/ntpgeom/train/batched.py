"""Many equal-shape NTP-UFM runs in one batched step: stacked parameters + ``torch.func.vmap``.

The NTP-UFM (``docs/paper.md`` §1.2) has free word embeddings W (V × d) and context embeddings
H (d × m); the logits are L = W H and the loss is the full-batch cross-entropy

    CE(W, H) = − Σ_j π_j Σ_z P_zj log softmax(L_{:,j})_z,

to which ``gd`` and ``adam`` add the ridge λ (‖W‖² + ‖H‖²) (the regularization path of §1.6, with
the training stage's λ: ``ntpgeom.train.training.Objective``),
while ``adamw`` decays the weights by lr·λ instead (the paper's AdamW ``weight_decay``).

Points that differ only in seed, step size, λ or optimizer share every shape, so B of them are
stacked into W (B, V, d) and H (B, d, m) and one ``vmap``-ed gradient serves all of them. A single
paper-size run is launch-bound on a GPU (``docs/baselines.md``: 2.1 ms/step), so on CUDA the whole
step (gradient and update of all B points) is captured once in a CUDA graph and replayed: B runs
cost one run's launches. On CPU the same code runs eagerly (B = 1 is a plain run).

Only torch and numpy are imported here, so this runs on the GPU machine as it is.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

#: Adam's β₁, β₂ and ε: PyTorch's defaults, as in the paper's AdamW runs (§2.3).
BETAS = (0.9, 0.999)
EPS = 1e-8
OPTIMIZERS = ("gd", "adam", "adamw")


def checkpoint_steps(epochs: int, n: int) -> np.ndarray:
    """About ``n`` log-spaced steps in [0, epochs], always with 0 and ``epochs`` (as the paper's
    snapshots at 0, 1, 10, 100, 1000, ...)."""
    steps = np.unique(np.round(np.logspace(0, math.log10(max(epochs, 1)), max(n - 1, 1))))
    return np.unique(np.concatenate([[0], steps, [epochs]]).astype(np.int64))


def init_params(V: int, m: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: N803
    """PyTorch's default ``nn.Linear`` init, as the paper's UFM: W ~ U(±1/√d), H ~ U(±1/√m).

    W is ``output = nn.Linear(d, V)``'s weight (fan-in d), H is ``l1 = nn.Linear(m, d)``'s
    (fan-in m); the kaiming-uniform default with a = √5 gives the bound 1/√fan_in.
    """
    g = torch.Generator().manual_seed(int(seed))
    W = (torch.rand(V, d, generator=g, dtype=torch.float64) * 2 - 1) / math.sqrt(d)
    H = (torch.rand(d, m, generator=g, dtype=torch.float64) * 2 - 1) / math.sqrt(m)
    return W, H


def _loss(W: torch.Tensor, H: torch.Tensor, ridge: torch.Tensor, Q: torch.Tensor  # noqa: N803
          ) -> torch.Tensor:
    """One run's loss; Q = P · diag(π) (V × m), so CE = −⟨Q, log softmax(W H)⟩."""
    L = W @ H  # (V, d) @ (d, m) -> (V, m)
    ce = -(Q * torch.log_softmax(L, dim=0)).sum()
    return ce + ridge * (W.square().sum() + H.square().sum())


class BatchedUFM:
    """B stacked UFM runs on one table, stepped together.

    Parameters
    ----------
    Q : ndarray (V, m)
        P · diag(π) of the table (shared by all runs).
    d : int
        Embedding width (shared).
    points : sequence of mapping
        Per run: ``seed``, ``lr``, ``lambda``, ``optimizer`` (one of :data:`OPTIMIZERS`).
    device : str
        ``cpu`` or ``cuda[:i]``.
    dtype : torch.dtype
        float64 on CPU (tiny problems, exact metrics); float32 is the GPU choice.
    cuda_graph : bool
        Capture the step in a CUDA graph (CUDA only).
    """

    def __init__(self, Q: np.ndarray, d: int, points: Sequence[Mapping[str, Any]], *,  # noqa: N803
                 device: str = "cpu", dtype: torch.dtype = torch.float64,
                 cuda_graph: bool = True) -> None:
        for p in points:
            if p["optimizer"] not in OPTIMIZERS:
                raise ValueError(f"optimizer must be one of {OPTIMIZERS}; got {p['optimizer']!r}")
        V, m = Q.shape
        self.device = torch.device(device)
        kw = {"device": self.device, "dtype": dtype}
        inits = [init_params(V, m, d, p["seed"]) for p in points]
        self.W = torch.stack([w for w, _ in inits]).to(**kw)  # (B, V, d)
        self.H = torch.stack([h for _, h in inits]).to(**kw)  # (B, d, m)
        self.Q = torch.as_tensor(Q, **kw)

        def col(key: str, fn=float) -> torch.Tensor:
            return torch.tensor([fn(p[key]) for p in points], **kw)

        opt = [p["optimizer"] for p in points]
        self.lr = col("lr")
        lam = col("lambda")
        is_adamw = torch.tensor([o == "adamw" for o in opt], device=self.device)
        # λ enters the loss for gd/adam (ridge) and the update for adamw (decoupled decay).
        self.ridge = torch.where(is_adamw, torch.zeros_like(lam), lam)
        self.decay = torch.where(is_adamw, lam, torch.zeros_like(lam))
        self.adaptive = torch.tensor([o != "gd" for o in opt], device=self.device)
        self.mW, self.vW = torch.zeros_like(self.W), torch.zeros_like(self.W)
        self.mH, self.vH = torch.zeros_like(self.H), torch.zeros_like(self.H)
        self.t = torch.zeros((), **kw)
        self.last_loss = torch.zeros(len(points), **kw)
        # vmap over the runs: W, H, ridge are batched, Q is shared.
        self._grad = torch.func.vmap(torch.func.grad_and_value(_loss, argnums=(0, 1)),
                                     in_dims=(0, 0, 0, None))
        self._graph: torch.cuda.CUDAGraph | None = None
        self._use_graph = cuda_graph and self.device.type == "cuda"

    @staticmethod
    def _b(x: torch.Tensor) -> torch.Tensor:
        return x[:, None, None]  # (B,) -> (B, 1, 1), to broadcast over a run's matrices

    def _step(self) -> None:
        """One step of every run, in place (so a captured graph replays on the same memory)."""
        (gW, gH), loss = self._grad(self.W, self.H, self.ridge, self.Q)
        self.last_loss.copy_(loss)
        self.t.add_(1)
        b1, b2 = BETAS
        lr, ada = self._b(self.lr), self._b(self.adaptive)
        for p, g, m_, v_ in ((self.W, gW, self.mW, self.vW), (self.H, gH, self.mH, self.vH)):
            m_.mul_(b1).add_(g, alpha=1 - b1)
            v_.mul_(b2).addcmul_(g, g, value=1 - b2)
            adam = (m_ / (1 - b1 ** self.t)) / ((v_ / (1 - b2 ** self.t)).sqrt() + EPS)
            p.mul_(1 - lr * self._b(self.decay))
            p.sub_(lr * torch.where(ada, adam, g))

    def step(self) -> None:
        """Advance every run by one full-batch step."""
        if not self._use_graph:
            self._step()
            return
        if self._graph is None:
            self._capture()
        self._graph.replay()

    def _capture(self) -> None:
        # Warm up on a side stream (cuBLAS handles, vmap's trace), then restore the state so the
        # captured run starts from the same parameters as an eager one.
        state = [x.clone() for x in self._state()]
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                self._step()
        torch.cuda.current_stream().wait_stream(s)
        for x, saved in zip(self._state(), state, strict=True):
            x.copy_(saved)
        self._graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self._graph):
            self._step()
        # Capturing records the kernels without running them, so the state is still the saved
        # one and the first replay is step 1.

    def _state(self) -> list[torch.Tensor]:
        return [self.W, self.H, self.mW, self.vW, self.mH, self.vH, self.t, self.last_loss]

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """W (B, V, d) and H (B, d, m) as float64 numpy arrays."""
        return (self.W.detach().to("cpu", torch.float64).numpy().copy(),
                self.H.detach().to("cpu", torch.float64).numpy().copy())

    def loss(self) -> np.ndarray:
        """Each run's loss at the current parameters (B,)."""
        with torch.no_grad():
            loss = torch.func.vmap(_loss, in_dims=(0, 0, 0, None))(self.W, self.H, self.ridge,
                                                                     self.Q)
        return loss.to("cpu", torch.float64).numpy()


def train_batch(P: np.ndarray, pi: np.ndarray, d: int, points: Sequence[Mapping[str, Any]], *,  # noqa: N803
                epochs: int, steps: np.ndarray, device: str = "cpu",
                dtype: torch.dtype = torch.float64) -> list[dict[str, np.ndarray]]:
    """Train B equal-shape runs together; record W, H and the loss at ``steps``.

    Parameters
    ----------
    P : ndarray (V, m)
        Conditional next-token probabilities (columns sum to 1).
    pi : ndarray (m,)
        Context frequencies.
    d, points, device, dtype
        See :class:`BatchedUFM`.
    epochs : int
        Number of full-batch steps.
    steps : ndarray of int
        Steps (in [0, epochs]) at which to record.

    Returns
    -------
    list of dict
        Per run: ``step`` (k,), ``loss`` (k,), ``W`` (k, V, d), ``H`` (k, d, m).
    """
    model = BatchedUFM(P * pi[None, :], d, points, device=device, dtype=dtype)
    record = set(int(s) for s in steps)
    losses, Ws, Hs = [], [], []
    for t in range(epochs + 1):
        if t in record:
            W, H = model.snapshot()
            Ws.append(W)
            Hs.append(H)
            losses.append(model.loss())
        if t < epochs:
            model.step()
    steps = np.array(sorted(record), dtype=np.int64)
    Ws_a, Hs_a, loss_a = np.stack(Ws, 1), np.stack(Hs, 1), np.stack(losses, 1)
    return [{"step": steps, "loss": loss_a[b], "W": Ws_a[b], "H": Hs_a[b]}
            for b in range(len(points))]

