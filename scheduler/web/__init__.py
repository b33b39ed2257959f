"""The web service: the unsubscribe page customers reach (and, to come, the owner's console).

`app` builds the Starlette application (routes, the package's own autoescaped Jinja templates,
the static files shipped inside the wheel, security headers); `unsubscribe` holds the public
routes `GET`/`POST /u/{token}` (RFC 8058 one-click included); `serve` runs it under uvicorn,
on its own (`appreciate web`) or inside the service's event loop (`[web] enabled`).

May import the service, delivery, detection, notes, the store, the core and config; never the
commands. The service does not import it: `appreciate run` hands the daemon `serve.start_embedded`
to start beside it.
"""
