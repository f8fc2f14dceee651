"""Exact, MinHash near-duplicate and boilerplate dedup as datatrove stages, and the phase that runs them
(local or Ray). Part of the data stage; imports gecko.data's own modules and the base modules only."""
