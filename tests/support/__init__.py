"""Helpers shared by every test package: Kinesis records, AWS error shapes, waiting on progress."""
