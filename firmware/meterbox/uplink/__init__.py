"""The uplink: the one owner of the connection to the vendor broker."""
