"""Exceptions raised by potstill for mistakes a user can fix."""


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
    """Another run of the same pipeline (same name and cache directory) is using its store."""


class BatchWriteError(PotstillUserError, RuntimeError):
    """A step produced a batch that cannot be stored (e.g. a column with mixed types)."""
