"""Serve the policies to the Pulumi engine: `pulumi preview --policy-pack infra/policies`."""

from __future__ import annotations

import os
import sys

from pulumi_policy import PolicyPack

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from infra.policies import POLICIES

PolicyPack(name="reviewstream-security", policies=POLICIES)
