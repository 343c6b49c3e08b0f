"""Pure cores of the stages: plain functions over records, unit-tested without Beam."""
