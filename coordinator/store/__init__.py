"""Our own small interface to the key-value store (etcd v3), and its adapters."""
