"""The outbox: the SQLite store that keeps every reading until the broker has it, and the clock."""
