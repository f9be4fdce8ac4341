"""SFAI feature_store."""
