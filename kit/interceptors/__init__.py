"""Server interceptors, outermost first: request (id, logs, errors), then access."""
