"""The audit trail: append-only, partitioned by month, tenant-scoped reads."""
