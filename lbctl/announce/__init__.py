"""Layer-2 announcing: netlink view of the host, raw-socket responder (I/O)."""
