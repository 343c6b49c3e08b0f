"""The Beam-free core: every pure decision and computation, by domain (docs/architecture.md)."""
