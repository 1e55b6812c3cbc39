"""The error every model-loading path raises."""


class ModelLoadError(RuntimeError):
    """A model file could not be used: missing, truncated, corrupt, or incompatible."""
