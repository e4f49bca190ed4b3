"""Pulumi entry point (`main: infra/` in Pulumi.yaml): read config, build, export. Nothing else lives here."""

from __future__ import annotations

import os
import sys

import pulumi

# Pulumi runs this file with infra/ as the working directory; the modules import as `infra.*`.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from infra import config, program

for key, value in program.build(config.load()).outputs().items():
    pulumi.export(key, value)
