"""Docker sandboxes for the tests and the demo: an image made with no registry, containers that
run the daemon bundle unchanged (see image.py and containers.py)."""
