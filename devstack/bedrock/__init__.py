"""A Bedrock-runtime-compatible HTTP server for the offline stack (Converse and InvokeModel wire formats).

Run it with `python -m devstack.bedrock --port N --backend lexicon|llm`; point any AWS SDK at it with
`AWS_ENDPOINT_URL_BEDROCK_RUNTIME=http://127.0.0.1:N`. Layout: `app.py` (routes, request path, admin API),
`wire.py` (request parsing and response shapes), `models.py` (known model ids and their limits),
`errors.py` (modeled exceptions), `admission.py` (load shedding), `faults.py` (run-time knobs),
`quota.py` (RPM/TPM), `stats.py`, `backends/` (the models).
"""

from __future__ import annotations

DEFAULT_MODEL_ID = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
