"""What comes back: bounces, spam complaints, replies and emailed opt-outs, read, matched to
the note they answer, and acted on.

`reading` turns a raw message into plain facts and `classify` says what it is (both pure, no
I/O); `bounce_tag` makes and checks the authenticated tag of the return path (VERP); `record`
stores each message once and acts on it in the store.

May import the store, config and the leaf modules; never delivery, detection, the service, the
web console or the commands.
"""
