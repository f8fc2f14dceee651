"""Mixing to target shares of tokens (default ko 35 / en 28 / code 37), deterministic given the seed, on any
executor (`run`: the phase; `choice`: how many copies of each document; `ranks`: the datatrove stages).
A data step; imports gecko.data's lower units and the base modules only."""
