"""The vendor side the box talks to. So far: MQTT ingest of readings (the wire contract's receiver)."""
