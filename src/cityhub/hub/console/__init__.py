"""The web console: its built files served at ``/`` (with the client routes' fallback to its page)
and the live feed of entity changes it listens to, ``/api/v1/console/stream``."""
