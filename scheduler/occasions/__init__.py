"""Occasions: the pure rules that decide which notes are due, for whom, and when."""
