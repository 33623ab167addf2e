"""All SQL of the auth service, one module per subdomain. Tenant-scoped queries
filter by tenant explicitly, under the row-level security bound by the unit of work."""
