"""The REST gateway: REST/JSON to gRPC, from the contracts' google.api.http annotations."""
