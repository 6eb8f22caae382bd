"""Command-line front ends: thin clients of :mod:`aspd_local.engine`."""
