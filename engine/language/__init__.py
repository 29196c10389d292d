"""The journey language: journey file -> Plan. Loader (YAML with a source map), model, checks and compiler,
conditions, templates, durations and schedules. Pure: no database, no Temporal, no network."""
