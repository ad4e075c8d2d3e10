"""Every per-step quantity that compares trained embeddings with the theory (``docs/paper.md``
§1.4–1.8, §3): :mod:`.core` (arrays → numbers, the one family of metric functions),
:mod:`.vocabulary` (the one name, meaning and unit of each stored quantity), :mod:`.geometry`
(the geometry stage's store) and :mod:`.trajectory` (grid points and linear runs)."""
