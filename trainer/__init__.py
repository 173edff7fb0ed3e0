"""DTPM training toolkit: data, synthetic degradations, Stage I / Stage II training,
evaluation and export, behind the `dtpm-train` command. Builds on `dtpm_core`."""
