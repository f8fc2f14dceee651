"""datatrove, Ray and Slurm glue of the data stage, in one place: `executor` runs a step list on datatrove's
local, Ray or Slurm executor (progress, logs, completion markers, shard writers); `step` holds the bases of
GECKO's datatrove steps, which record each drop in the stage's ledger. Imports gecko.data.stats and the base
modules only."""
