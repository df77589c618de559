"""The one exception type of :mod:`mal.data`."""

from __future__ import annotations


class DataError(ValueError):
    """A dataset, corpus or source cannot be used as it is; the message names the file and says what to do."""
