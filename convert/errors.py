"""The converter's error: one line the user can act on."""

from aspd_local.errors import AspdLocalError


class ConvertError(AspdLocalError):
    """The checkpoint cannot be converted (missing or inconsistent files, an unsupported feature)."""
