"""Notes: what each note says, written from the owner's templates in a sandbox.

`template_sandbox`, `render_limits` and `render` (the sandboxed Jinja environment, its time and
size limits, and writing a note), `template_choice` (which template a note uses),
`template_check` (`appreciate templates check`), `template_failures` (notes failed on a
template), `note_context` and `note_links` (the facts a template sees, and which text may become
a link), `unsubscribe` (each customer's token and link), `message`, `header_safety` and
`note_message` (the email built from a written note, with no header injection),
`dkim_signing` (its DKIM signature, when the owner sets one up) and `preview`.

May import the store, the core and config; never delivery, detection, the service or the
commands.
"""
