"""Which errors a user causes and which are the program's fault.

A *user error* is something the person running polymodal can fix: a file they named does not exist, a store
path that is not a store, a bad option value, a file that is not the media it claims to be. The command line
answers it with one line and exit 2, the HTTP API with a 4xx. Everything else is *internal* (a bug, or the
machine): exit 1 / HTTP 500 with an incident id, the traceback in the log. A ``ValueError`` or ``KeyError`` from
deep inside is never taken for bad input: only the explicit types below (and the few domain types that
:func:`is_user_error` lists) are.
"""

from __future__ import annotations

import errno
import secrets


class UserError(Exception):
    """Base of the errors a user causes and can fix; the message says what to do, in words."""


class UsageError(UserError, ValueError):
    """A bad argument or option value ("give either a file or --text"). A ``ValueError`` too, for old callers."""


class InputNotFound(UserError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class ConfigError(UserError, ValueError):
    """A setting (option, ``POLYMODAL_*`` variable or ``polymodal.toml``) has a bad value; the message names it."""


class OutsideError(Exception):
    """Marker for failures of the world outside the program (a remote provider, a full disk): not a bug, not input."""


def user_error_types() -> tuple[type[BaseException], ...]:
    """The domain errors that are the user's to fix, besides :class:`UserError` (imported lazily: some are heavy).
    ``StoreError`` is one too (no store at that path, not a store), except ``StoreUnavailable``: see
    :func:`is_user_error`."""
    from polymodal.api.security import KeyFileError  # a damaged API keys file in the store
    from polymodal.collection import ItemNotFound
    from polymodal.media.errors import MediaError
    from polymodal.space.aligner import AlignerError
    from polymodal.store.sqlite import StoreError

    types: list[type[BaseException]] = [UserError, MediaError, ItemNotFound, AlignerError, StoreError, KeyFileError]
    try:  # the `train` extra
        from polymodal.train.fusion import ModelFileError
        from polymodal.train.manifest import ManifestError

        types += [ManifestError, ModelFileError]
    except ImportError:
        pass
    return tuple(types)


def outside_error_types() -> tuple[type[BaseException], ...]:
    """Failures of something outside polymodal's code: a model not installed, a provider down, a full disk."""
    from polymodal.models.base import ModelError
    from polymodal.providers import ProviderError
    from polymodal.samples import SampleUnavailable
    from polymodal.store.sqlite import StoreUnavailable

    return (OutsideError, ModelError, ProviderError, SampleUnavailable, StoreUnavailable)


def is_user_error(exc: BaseException) -> bool:
    return isinstance(exc, user_error_types()) and not is_outside_error(exc)


# The machine refused (a full disk, a read-only one, no permission): said in words, not taken for a bug.
MACHINE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


def is_outside_error(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in MACHINE_ERRNOS:
        return True
    return isinstance(exc, outside_error_types())


def new_incident_id() -> str:
    """A short random id that ties a one-line error message to its traceback in the log."""
    return secrets.token_hex(4)
