"""The domain model both components share: group specs, controls, epochs, decisions.

Sits below coordinator and sidecar; imports only pydantic, protobuf and failover.v1.
"""
