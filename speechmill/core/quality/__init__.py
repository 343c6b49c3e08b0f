"""Quality: the filter suite, the relabelling gate, pair metrics."""
