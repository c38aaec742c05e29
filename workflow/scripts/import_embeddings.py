"""Rule import_embeddings: thin wrapper over soundsim.precomputed.import_embeddings."""

from soundsim.logutil import job_log
from soundsim.precomputed import import_embeddings, source_of

sm = snakemake  # noqa: F821 - injected by Snakemake

with job_log(sm.log[0]):
    import_embeddings(
        source_of(sm.input.source, sm.params.format, sm.input.get("fnames")),
        sm.input.manifest,
        sm.output[0],
        model=sm.wildcards.model,
        variation=sm.wildcards.variation,
        level=sm.params.level or None,
        on_missing=sm.params.on_missing,
        bad_audio_path=sm.input.bad_audio,
        fingerprint=sm.params.fingerprint,
        code_version=sm.params.code_version,
    )
