"""The auth servicers, one module per contract service."""
