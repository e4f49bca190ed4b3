"""Bedrock batch inference (model-invocation jobs) for the local stack: the control plane and the job runner.

In: CreateModelInvocationJob / Get / List / Stop and job tagging, at botocore's `bedrock` REST paths (a client
reaches them through `AWS_ENDPOINT_URL_BEDROCK`), and JSONL input in S3 (`AWS_ENDPOINT_URL_S3`, moto). Out: job
descriptions with Bedrock's statuses and record counts, and in S3 `<output>/<job id>/<input file>.out` lines
(`recordId`, `modelInput`, `modelOutput` or `error`) in shuffled order, plus `manifest.json.out`.
Layout: `api.py` (routes, admin), `validate.py` (constraints from botocore's model), `jobs.py` (statuses, job
table, wire shape), `runner.py` (a job's life), `records.py` (one record), `storage.py` (S3), `knobs.py`.
"""

from __future__ import annotations
