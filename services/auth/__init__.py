"""Identity, memberships, sessions and tokens."""
