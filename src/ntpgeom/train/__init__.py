"""Training on a distinct-context table: the two models (:mod:`.model`), the training loop and its
resumable trajectory stores (``docs/paper.md`` §1.1–1.3, §2.2)."""
