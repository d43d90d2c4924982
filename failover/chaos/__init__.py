"""The chaos soak and the strategies of the fault tier (uses the strategy library)."""
