"""The box's own life with the vendor and the office: enrollment (and later panel, service, office page)."""
