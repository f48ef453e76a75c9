"""Preview access: sessions bound to the active run, their tokens, and the three paths that
decide access through the repo-access cache and fail closed (CONTRACT §5): exchange, proxy and
subscription-token.

Only the composition roots (app.py, cli.py) import it; no other domain does.
"""
