"""`failover demo`: a whole local cluster, scripted failovers, and their measured timeline."""
