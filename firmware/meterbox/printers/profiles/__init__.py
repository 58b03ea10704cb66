"""Printer profiles: data files that map a printer family's OIDs to canonical meters and supplies."""
