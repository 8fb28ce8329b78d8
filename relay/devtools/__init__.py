"""Local tools for ``relay dev`` and tests: an embedded Redis, a loopback receiver."""
