"""Tenantry's gRPC services, one package per bounded context."""
