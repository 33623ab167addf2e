"""The auth use cases, one module per subdomain."""
