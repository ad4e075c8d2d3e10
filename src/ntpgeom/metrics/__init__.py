"""Every per-step quantity that compares trained embeddings with the theory (``docs/paper.md``
§1.4–1.8, §3)."""
