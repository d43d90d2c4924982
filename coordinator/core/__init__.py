"""Pure decision logic: no asyncio, gRPC or etcd imports in this package."""
