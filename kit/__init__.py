"""The shared kit: everything the three services do the same way, written once."""

# First, before anything imports grpc: it quiets gRPC's plain-text C-core logs.
from kit import logging as _logging  # noqa: F401
