"""Platform-wide system settings: key, JSON value, description, public flag."""
