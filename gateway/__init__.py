"""The REST gateway: REST/JSON to gRPC, from the contracts' google.api.http annotations."""

# Before grpc loads: the kit quiets gRPC's plain-text C-core logs.
import kit  # noqa: F401
