"""Operator commands that live outside ``failover/cli.py`` (registered from it lazily)."""
