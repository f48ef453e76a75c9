"""The dashboard's server: Streamlit's ASGI app (`st.App`) around the page (`app.py`), with the
edge in front of every route (`edge.py`: host names, sign-in). `terragon dashboard` and `terragon
up` run `streamlit run server.py`; Streamlit finds `app` below and serves it with uvicorn; at start it fills the page's caches
for the default view (`cache.warm_up`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import streamlit as st
from starlette.middleware import Middleware

from terragon_dashboard.edge import HostGuard, SignIn
from terragon_dashboard.settings import DashboardSettings

_settings = DashboardSettings.from_env()


def _warming(_: object) -> contextlib.AbstractAsyncContextManager[None]:
    # imported here, once Streamlit's runtime runs: its query cache is then the one page runs use
    from terragon_dashboard.cache import warming

    return warming(_settings.archive)


app = st.App(
    Path(__file__).with_name("app.py"),
    middleware=[Middleware(HostGuard, settings=_settings)],
    routes=SignIn(_settings).routes(),
    lifespan=_warming,  # the first browser finds the caches filled
)
