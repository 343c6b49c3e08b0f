"""Text utilities: normalisers and error-rate metrics (pure functions)."""
