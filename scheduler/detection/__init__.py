"""Detection: finding the occasions the store's facts make due and recording them as touches.

`detect` (one detection tick: birthdays, anniversaries, orders, referrals, meetings,
follow-ups) and `check_ins` (valued customers gone quiet, a chunk at a time). The rules
themselves are pure, in `scheduler.occasions`; this package reads the store and writes the
outbox.

May import the store, the core and config; never delivery, notes, the service or the commands.
"""
