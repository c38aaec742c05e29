"""Rule merge_embeddings: thin wrapper over soundsim.extract.merge_shards."""

from soundsim.extract import merge_shards
from soundsim.logutil import job_log

sm = snakemake  # noqa: F821 - injected by Snakemake

with job_log(sm.log[0]):
    merge_shards(list(sm.input.shards), sm.output[0])
