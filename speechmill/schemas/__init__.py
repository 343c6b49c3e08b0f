"""Record types and their declared Arrow schemas (one declaration per table)."""

from speechmill.schemas.base import REGISTRY, Column, TableSpec, spec_of
from speechmill.schemas.corpus import Attribution, NBestList, Recording, Segment, SourceItem
from speechmill.schemas.refine import DERIVED_VIEWS, Label, Utterance, Word
from speechmill.schemas.rejects import CATEGORY_DOCS, Category, Drop, Dropped, Reject
from speechmill.schemas.runs import RunRecord
from speechmill.schemas.synth import AugParams, Pair, TtsParams

SCHEMA_VERSION = 5
"""Bumped on any change to any table; docs/schema.md keeps the release notes."""

SCHEMA_NOTES: dict[int, str] = {
    1: "First release: sources, recordings, segments, hypotheses, rejects, runs.",
    2: "New tables `utterances` (aligned, resegmented units with word timings) and `labels` "
    "(noisy-student rounds with lineage). No column of version 1 changed.",
    3: "New table `pairs` (N-best hypotheses with their reference, for GER and DLM training). "
    "No existing column changed.",
    4: "`pairs.token_logprobs` (per-token log-probs, null unless `synth.token_logprobs`). "
    "Files of version 3 read with the column null.",
    5: "`sources.listed_url` (the URL as listed, when a redirect or extractor changed it) and "
    "`recordings.downmix` (how channels became mono). New reject categories `policy_robots` and "
    "`unwritable`. Files of version 4 read with both columns null.",
}

TABLES: dict[str, TableSpec] = REGISTRY

__all__ = [
    "CATEGORY_DOCS",
    "DERIVED_VIEWS",
    "SCHEMA_NOTES",
    "SCHEMA_VERSION",
    "TABLES",
    "Attribution",
    "AugParams",
    "Category",
    "Column",
    "Drop",
    "Dropped",
    "Label",
    "NBestList",
    "Pair",
    "Recording",
    "Reject",
    "RunRecord",
    "Segment",
    "SourceItem",
    "TableSpec",
    "TtsParams",
    "Utterance",
    "Word",
    "spec_of",
]
