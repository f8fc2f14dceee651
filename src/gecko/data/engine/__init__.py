"""datatrove and Ray glue of the data stage, in one place: `executor` runs a step list on datatrove's local
or Ray executor (progress, logs, completion markers); `step` holds the bases of GECKO's datatrove steps,
which record each drop in the stage's ledger. Imports gecko.data.stats and the base modules only."""
