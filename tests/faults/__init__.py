"""The fault-injection suite (`pytest -m faults -rA`): the real dataflow as a subprocess on the local stack,
one fault per test, then the accounting invariant (every record put is indexed or dead-lettered, never
both, no review twice). Each test prints one `faults: ...` summary line and records it as a property."""
