"""Garbage-collector settings for long batch runs (the CLI, a Lambda invocation).

The pipeline allocates millions of small dicts that live until the run ends and contain no cycles worth
collecting early; the default thresholds make the collector rescan them over and over (about a third of
the CPU time in `make bench`). Raising the first threshold and freezing what is loaded at start-up keeps
collection for real garbage.
"""

from __future__ import annotations

import gc

_TUNED = False


def tune_for_batches() -> None:
    """Idempotent: call once per process, from a composition root."""
    global _TUNED
    if _TUNED:
        return
    gc.freeze()  # modules, config and schemas loaded so far are never garbage
    gc.set_threshold(100_000, 20, 100)
    _TUNED = True
