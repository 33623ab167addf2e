"""Developer tooling: code generation, the local launcher, demo data."""
