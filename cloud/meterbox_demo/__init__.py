"""The live demo: simulated printers, the vendor side, the broker and an unclaimed box, with readings flowing."""
