"""One exception family, so the CLI and the node can tell user mistakes from bugs."""


class SegnetError(Exception):
    """A problem the user can fix; the message says what is wrong and what to do."""


class ModelError(SegnetError):
    """A model, label or colour file is missing, unreadable or inconsistent."""


class FrameError(SegnetError):
    """An input frame cannot be segmented (wrong shape, dtype or encoding)."""


class BackendError(SegnetError):
    """An inference backend cannot be created or cannot run."""


class SettingsError(SegnetError, ValueError):
    """A setting that cannot apply to this model (an ``ignore_class`` that names none of its classes)."""
