"""Request and response models of the HTTP API, one file per router family."""
