"""The audit trail as files: exports verifiable offline, monthly archives, retention and restores."""
