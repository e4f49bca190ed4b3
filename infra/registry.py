"""ECR repository for the dataflow image: immutable tags, scan on push, KMS encryption, bounded history."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

KEEP_IMAGES = 20

LIFECYCLE_POLICY = {
    "rules": [
        {
            "rulePriority": 1,
            "description": "Expire untagged images after 7 days",
            "selection": {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": 7,
            },
            "action": {"type": "expire"},
        },
        {
            "rulePriority": 2,
            "description": f"Keep the last {KEEP_IMAGES} images",
            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": KEEP_IMAGES},
            "action": {"type": "expire"},
        },
    ]
}


@dataclass
class Registry:
    repository_url: pulumi.Output[str]
    repository_arn: pulumi.Output[str]


def build_registry(name: str, tags: dict[str, str]) -> Registry:
    repo = aws.ecr.Repository(
        f"{name}-dataflow",
        name=f"{name}/dataflow",
        image_tag_mutability="IMMUTABLE",  # a tag always names the same image: deploys are reproducible
        image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
        encryption_configurations=[aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="KMS")],
        force_delete=False,
        tags=tags,
    )
    aws.ecr.LifecyclePolicy(f"{name}-dataflow", repository=repo.name, policy=json.dumps(LIFECYCLE_POLICY))
    return Registry(repository_url=repo.repository_url, repository_arn=repo.arn)
