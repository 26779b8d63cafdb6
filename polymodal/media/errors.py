"""Errors about the content of a media file (as opposed to a model or the machine)."""

from __future__ import annotations


class MediaError(ValueError):
    """A file could not be read as the media it claims to be; the message says why in plain words."""
