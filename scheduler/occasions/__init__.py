"""Occasions: the pure rules that decide which notes are due, for whom, and when.

Pure: every rule takes `now` and plain values, and reads no clock, file, store or network.
May import config (the settings models) and the leaf modules (`scheduler.zones`,
`scheduler.local_days`, `scheduler.vocabulary`, ...); nothing that does I/O.
"""
