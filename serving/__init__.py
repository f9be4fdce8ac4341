"""SFAI serving."""
