"""Exact, MinHash near-duplicate and boilerplate dedup as datatrove stages (`run`: the phase that runs them,
local or Ray). A data step; imports gecko.data's lower units and the base modules only."""
