"""SFAI models."""
