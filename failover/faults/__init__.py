"""Fault-injection plumbing: a TCP proxy the test controls, a process harness, and an
observing invariant checker. Imports no component (the harness starts them as processes)."""
