"""The setup page: one printed sheet with the box's id, state, LED legend, printers and a QR code.

``info.py`` gathers what it shows (``SetupInfo``), ``layout.py`` places it, ``render.py`` writes
it as PDF (fpdf2) or PostScript, ``send.py`` prints it (IPP or raw port 9100, ``ipp.py``, ``pjl.py``).
"""
