"""The data stage: corpus sources, tokenizers, streaming counts, synthetic corpora, and the
distinct-context table (π, P, support S, entropy H) they become (``docs/paper.md`` §1.1, §2.1)."""
