"""Factory side of meterbox: the vendor CA, one identity per box (id, key, claim code) and its QR label."""
