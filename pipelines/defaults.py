"""Pipeline limits the CLI shows in its help, apart from the runner: ``sfai`` then starts without importing
pyarrow and the feature store, which only the commands that run a pipeline need."""

DEFAULT_MAX_BAD_SHARE = 0.01  # a run fails when more than this share of its rows is bad
MAX_WORKERS = 64  # CPUs of a local Ray; a run has at most MAX_PARTITIONS tasks at a time anyway
