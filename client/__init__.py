"""The sidecar that runs on every trading host, and the library strategies import."""
