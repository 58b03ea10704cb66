"""Reading printers: discovery, SNMP, vendor profiles, and what the values mean."""
