"""Pulumi program for reviewstream: one module per concern, composed by `program.build`.

Every module exposes a function that builds its resources and returns a dataclass of outputs, so the
unit tests in `tests/infra/` can build the whole program under `pulumi.runtime.set_mocks`.
"""
