"""The test bed: control plane, binaries, LAN, nodes, traffic (I/O; the ``lbctl[lab]`` extra)."""
