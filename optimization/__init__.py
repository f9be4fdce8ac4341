"""SFAI optimization."""
