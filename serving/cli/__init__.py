"""The ``sfai`` command line."""
