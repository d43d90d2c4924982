"""The venue wire codec (framed TCP), shared by the simulator and the sidecar's path sessions."""
