"""The embedded local stack: AWS services on loopback, no account and no internet needed."""
