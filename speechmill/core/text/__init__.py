"""Text: normalisers, error rates, Unicode checks, preparation for TTS."""
