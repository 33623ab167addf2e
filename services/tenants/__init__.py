"""The tenant registry."""
