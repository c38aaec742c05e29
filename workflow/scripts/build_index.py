"""Rule build_index: thin wrapper over soundsim.service.index.build_index."""

from soundsim.logutil import job_log
from soundsim.service.index import build_index

sm = snakemake  # noqa: F821 - injected by Snakemake

with job_log(sm.log[0]):
    build_index(
        sm.config,
        sm.output.index,
        sm.params.system or None,
        sm.params.type,
        dict(sm.params.index_params),
    )
