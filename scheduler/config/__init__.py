"""Configuration: the settings models and the config file they are read from.

`settings` (the pydantic models of every table), `occasion_settings` (`[occasions.<kind>]`),
`import_columns` (each import kind's columns and the names a header may give them), `file`
(finding, reading and checking `appreciate.toml`), `dkim_key` (the DKIM signing key named by
`[smtp] dkim_key_file`, read and checked, and its DNS record), `secret_file` (reading the
files secrets and keys are kept in, never waiting on a pipe) and `advice` (the warnings
`appreciate config check` gives).

The bottom layer: may import only the leaf modules at the package's top (`scheduler.addresses`,
`scheduler.vocabulary`, `scheduler.errors`, ...).
"""
