"""The demo pages (``demos/NAME/``) and the server that shows them (``demos/server.py``).

Not part of the ``deeplearn`` package or its wheel: the demos need a checkout of the repository,
and run from its root with ``./scripts/watch-demo demos/NAME`` (or ``python -m demos demos/NAME``).
"""
