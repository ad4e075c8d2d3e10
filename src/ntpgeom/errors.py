"""The exception type for mistakes a user can fix (bad config, bad input file, missing licence),
and the one SIGTERM raises.

Anything raised as :class:`UserError` is shown as a single line naming the setting or file and
what to do, never as a traceback: the CLI prints it and exits with status 2, and Snakemake
scripts (through :func:`ntpgeom.store.script_main`) write it to the rule's log and exit 1.
"""


class UserError(Exception):
    """A problem with the user's input or environment, with a message that says how to fix it."""


class Terminated(KeyboardInterrupt):
    """Raised on SIGTERM by the handler of :func:`ntpgeom.store.install_signal_handlers`.

    A ``KeyboardInterrupt`` subclass, so code that cleans up after Ctrl-C (every ``finally:``,
    context managers, training's checkpoint on interrupt) treats SIGTERM alike.
    """

    def __init__(self, signum: int = 15) -> None:
        super().__init__(signum)
        self.signum = signum
