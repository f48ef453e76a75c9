"""The demo fleet: real daemons (from the bundle) running the fake agent against a live service."""
