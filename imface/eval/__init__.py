"""``imface eval``: score reconstructions against their ground truths (paper Sec. 4)."""
