"""SFAI pipelines."""
