"""ECR repository for the dataflow image: immutable tags, scan on push, KMS encryption, bounded history.

The history rule counts every image, so on its own it would expire the deployed one once 20 newer images
were pushed (a busy CI), and the next pod start would fail to pull. ECR never lets a lower-priority rule
expire an image that a higher-priority rule's tag selection matched, so rule 1 selects the deployed tag and
keeps it (more than one image with one immutable tag cannot exist).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

KEEP_IMAGES = 20


def lifecycle_policy(deployed_tag: str) -> dict:
    """The repository's lifecycle rules; `deployed_tag` (reviewstream:imageTag) is never expired."""
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"Keep the deployed image ({deployed_tag})",
                "selection": {
                    "tagStatus": "tagged",
                    "tagPatternList": [deployed_tag],
                    "countType": "imageCountMoreThan",
                    "countNumber": 1,
                },
                "action": {"type": "expire"},
            },
            *[{**rule, "rulePriority": rule["rulePriority"] + 1} for rule in HISTORY_RULES],
        ]
    }


HISTORY_RULES = [
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


@dataclass
class Registry:
    repository_url: pulumi.Output[str]
    repository_arn: pulumi.Output[str]


def build_registry(name: str, tags: dict[str, str], deployed_tag: str) -> Registry:
    repo = aws.ecr.Repository(
        f"{name}-dataflow",
        name=f"{name}/dataflow",
        image_tag_mutability="IMMUTABLE",  # a tag always names the same image: deploys are reproducible
        image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
        encryption_configurations=[aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="KMS")],
        force_delete=False,
        tags=tags,
    )
    aws.ecr.LifecyclePolicy(f"{name}-dataflow", repository=repo.name, policy=json.dumps(lifecycle_policy(deployed_tag)))
    return Registry(repository_url=repo.repository_url, repository_arn=repo.arn)
