"""Telemetry plumbing shared by every process: the meter provider and its exporters."""
