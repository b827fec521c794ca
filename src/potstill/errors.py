"""Every exception class potstill defines, in one place.

Most are mistakes a user can fix (`PotstillUserError` and its subclasses), each raised with
a message that says how. The others report a run that cannot go on (`PipelineRunError`), a
run stopped by its spending limit (`BudgetExceededError`), a stored batch that cannot be read
back (`DamagedBatchError`), or a missing price inside
`potstill.llms.pricing` (`NoPriceError`, which never leaves that module). The modules that
used to define them still import them, so `from potstill.pipeline.engine import
PipelineRunError` keeps working.
"""


class PotstillUserError(ValueError):
    """A configuration or input mistake, with a message that says how to fix it."""


class LLMNotLoadedError(PotstillUserError, RuntimeError):
    """An LLM was used before its `load()` method was called."""


class PipelineValidationError(PotstillUserError):
    """A pipeline cannot run as configured (raised before any step is loaded)."""


class UnsafeConfigError(PotstillUserError):
    """A serialized config names a class that potstill refuses to import."""


class RemoteCodeError(UnsafeConfigError):
    """A serialized config asks to run code from a model repository (`trust_remote_code`)
    and the caller did not allow it."""


class PipelineBusyError(PotstillUserError, RuntimeError):
    """Another run of the same pipeline (same name and cache directory) is using its folder."""


class BatchWriteError(PotstillUserError, RuntimeError):
    """A step produced a batch that cannot be stored (e.g. a column with mixed types)."""


class LlamaCppBuildError(PotstillUserError):
    """The installed llama.cpp build crashes on this machine."""


class PipelineRunError(RuntimeError):
    """A step failed in a way that stops the pipeline (load failure, generator error...)."""


class ReplicaDiedError(RuntimeError):
    """The Ray replicas running a batch kept dying while it ran (or cannot be restarted)."""


class BudgetExceededError(RuntimeError):
    """A spending limit (`max_cost`) stopped a pipeline run before its end: every request
    answered so far is kept, and a run with a higher limit resumes. Also the error of each
    request a limit did not let through.

    Attributes:
        cost: what the run spent (`potstill.pipeline.spend.RunCost`), when a run stopped.
    """

    def __init__(self, message: str, cost: object = None) -> None:
        super().__init__(message)
        self.cost = cost


class DamagedBatchError(RuntimeError):
    """A stored batch file does not match its checksum (or cannot be read)."""


class NoPriceError(Exception):
    """The price table has no price for this model (or provider)."""
