"""Progress of a training loop: a tqdm bar on a terminal, log lines otherwise."""

from __future__ import annotations

import logging
import sys

import torch

log = logging.getLogger(__name__)


class Progress:
    """tqdm bar (epoch, loss, CE − H) on a terminal; a log line every ~10% otherwise."""

    def __init__(self, total: int, initial: int, entropy: float, enabled: bool | None) -> None:
        self.total, self.entropy, self.bar = total, entropy, None
        tty = sys.stderr.isatty() if enabled is None else enabled
        self.every = max(1, total // 10)
        self.next_log = (initial // self.every + 1) * self.every
        if tty:
            try:
                from tqdm.auto import tqdm  # optional: the core runs without it
            except ImportError:  # fall back to log lines
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, initial=initial, unit="epoch", dynamic_ncols=True,
                                mininterval=0.5, file=sys.stderr)

    def update(self, step: int, n: int, metrics: torch.Tensor | None) -> None:
        # metrics (B, 3): the bar shows the first run's
        if self.bar is not None:
            self.bar.update(n)
            if metrics is not None:
                ce = float(metrics[0, 0])
                self.bar.set_postfix(epoch=step, loss=f"{ce:.5f}",
                                     ce_minus_H=f"{ce - self.entropy:.3e}", refresh=False)
        elif step >= self.next_log and metrics is not None:
            ce = float(metrics[0, 0])
            log.info("epoch %d/%d  loss %.6f  CE − H %.3e", step, self.total, ce,
                     ce - self.entropy)
            self.next_log += self.every

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
