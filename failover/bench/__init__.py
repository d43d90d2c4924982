"""Benchmarks of a real coordinator cluster on loopback (``failover bench``).

Every number comes from a measurement of real processes: etcd members started
by :class:`failover.etcdproc.EtcdCluster` and coordinator replicas started as
``python -m failover.cli coordinator`` subprocesses. Latencies are recorded in
HdrHistogram (microseconds, 3 significant digits) and reported in ms.
"""
