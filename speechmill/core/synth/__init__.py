"""Synthesis: plans (ids, splits, voices, augmentation parameters), real-pair selection."""
