"""ASR: N-best assembly, de-duplication, top-up policy, decode options."""
