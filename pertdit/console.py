"""What a run prints: every log line once, no advertisements, no warnings that are not the user's to act on.

`configure_console()` is called by every command (and by `train(cfg)`) before Lightning builds a Trainer:

- Lightning's top-level `lightning` logger has its own console handler *and* propagates to the root logger,
  which Hydra (or `logging.basicConfig`) also gives a console handler: every INFO line came out twice. When
  the root logger has a handler, Lightning's own handler is removed, so each line is printed once, in the
  root's format.
- Lightning's "Tip: ... try installing litlogger" line is an advertisement: it is filtered out.
- Lightning 2.6 calls `torch.utils._pytree.LeafSpec`, which torch 2.13 deprecates (a FutureWarning inside
  Lightning, nothing a user can change): that one warning is silenced, by its exact message.
"""

from __future__ import annotations

import logging
import warnings

#: Lightning messages that are advertisements, not information about the run
ADVERTISEMENTS = ("litlogger",)
#: (message regex, category) of warnings raised inside dependencies that a user cannot act on
DEPENDENCY_WARNINGS = (
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),
)
#: the logger names Lightning logs under
LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")


class DropAdvertisements(logging.Filter):
    """Drops log records whose message mentions one of `ADVERTISEMENTS`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(word in message for word in ADVERTISEMENTS)


_FILTER = DropAdvertisements()


def configure_console() -> None:
    """One handler per log line, no litlogger tip, no dependency deprecation noise (idempotent)."""
    for category_message, category in DEPENDENCY_WARNINGS:
        warnings.filterwarnings("ignore", message=category_message, category=category)
    root_has_handler = bool(logging.getLogger().handlers)
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if root_has_handler:  # the root prints it: Lightning's own handler would print it a second time
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True
        for handler in logger.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
    # the filter sits on the loggers that emit, so it applies whichever handler prints the record
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def log_every_n_steps(configured: int, train_batches: int) -> int:
    """The logging interval for an epoch of `train_batches` batches: the configured one, or the epoch
    length when the epoch is shorter (Lightning warns, and logs no training loss, otherwise)."""
    return max(1, min(int(configured), int(train_batches)))
