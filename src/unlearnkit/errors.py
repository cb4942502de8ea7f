"""User-facing errors. Each names the file, value or option that is wrong."""


class UnlearnkitError(Exception):
    """Base class: an error caused by input the user can fix; the CLI prints it without a traceback."""


class ConfigError(UnlearnkitError, ValueError):
    """An unknown name, option or hyper-parameter value."""


class NotApplicable(ConfigError):
    """A method's declared inapplicability to this data or split (e.g. entangle asked for the split's
    adjacent examples on a split that has none): the benchmark records the cell as "not applicable"
    and goes on. Every other error fails the cell."""


class SpecError(UnlearnkitError, ValueError):
    """A forget specification that cannot be turned into a valid split."""


class DataError(UnlearnkitError, ValueError):
    """A data file or folder that is missing or malformed."""


class CheckpointError(UnlearnkitError):
    """A checkpoint that cannot be read, or a write that would overwrite an existing file."""


class DivergenceError(UnlearnkitError, RuntimeError):
    """A loss became NaN or infinite; the run stopped and the input model was left untouched."""


class MissingExtraError(UnlearnkitError, ImportError):
    """A feature needs an optional dependency that is not installed; the message names the extra to install."""
