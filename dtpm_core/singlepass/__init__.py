"""The single-pass model (DESIGN section 6): its network (`network`), noise schedule
(`schedule`), weight files (`weights`) and graph for a graph runtime (`graph`). The restorer
that runs it on photos is `dtpm_core.engines.singlepass_restorer`."""
