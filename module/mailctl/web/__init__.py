"""`mailctl serve`: the HTTPS admin UI and HTTP API of one instance.

- app.py      the Starlette application: routes, session/CSRF guard, static files
- auth.py     who may log in (the bootstrap `admin`, the user domain's `domain admins`),
              sessions and the per-address login throttle
- api.py      the /api/ endpoints: actions, tasks, manifest, status, OpenAPI document
- tasks.py    long actions run as child `mailctl run` processes with progress
- openapi.py  the OpenAPI document generated from the action schemas
- rspamd.py   /rspamd/: reverse proxy to Rspamd's web UI, adding its password
- server.py   uvicorn over HTTPS with the instance certificate (reloaded when it changes)
"""
