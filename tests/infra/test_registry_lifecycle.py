"""ECR's lifecycle rules, evaluated offline the way ECR documents them, against the deployed image.

Semantics (ECR user guide, "Lifecycle policies"): rules are applied by priority; an image that a rule's tag
selection matches cannot be expired by a rule of lower priority; `imageCountMoreThan` keeps the newest
`countNumber` images it selects; `sinceImagePushed` expires those older than `countNumber` days; `tagStatus:
any` must be the last rule.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import pytest

from infra.registry import HISTORY_RULES, KEEP_IMAGES, lifecycle_policy


@dataclass(frozen=True)
class Image:
    tag: str | None
    pushed_day: int


def selects(selection: dict, image: Image) -> bool:
    status = selection["tagStatus"]
    if status == "any":
        return True
    if status == "untagged":
        return image.tag is None
    patterns = selection.get("tagPatternList") or [f"{p}*" for p in selection.get("tagPrefixList", [])]
    return image.tag is not None and any(fnmatch.fnmatchcase(image.tag, p) for p in patterns)


def expired(policy: dict, images: list[Image], today: int) -> set[Image]:
    rules = sorted(policy["rules"], key=lambda r: r["rulePriority"])
    assert all(r["selection"]["tagStatus"] != "any" for r in rules[:-1]), "tagStatus any must be the last rule"
    claimed: set[Image] = set()
    gone: set[Image] = set()
    for rule in rules:
        sel = rule["selection"]
        mine = [i for i in images if i not in claimed and selects(sel, i)]
        if sel["countType"] == "imageCountMoreThan":
            newest_first = sorted(mine, key=lambda i: -i.pushed_day)
            gone.update(newest_first[sel["countNumber"] :])
        else:
            gone.update(i for i in mine if today - i.pushed_day > sel["countNumber"])
        claimed.update(mine)
    return gone


@pytest.mark.parametrize("deployed", ["v1", "v15", "v30"])
def test_the_deployed_image_survives_any_number_of_newer_pushes(deployed: str) -> None:
    images = [Image(f"v{d}", d) for d in range(1, 31)] + [Image(None, 2)]
    gone = expired(lifecycle_policy(deployed), images, today=40)
    assert Image(deployed, int(deployed[1:])) not in gone
    kept = [i for i in images if i not in gone]
    assert all(i.tag is not None for i in kept)  # untagged layers older than 7 days go
    others = sorted((i for i in images if i.tag not in (None, deployed)), key=lambda i: -i.pushed_day)
    assert {i.tag for i in kept} == {i.tag for i in others[:KEEP_IMAGES]} | {deployed}


def test_the_history_rules_alone_would_expire_an_old_deployed_image() -> None:
    """The premise of rule 1: the rules before it expired the deployed image once 20 newer were pushed."""
    images = [Image(f"v{d}", d) for d in range(1, 31)]
    assert Image("v1", 1) in expired({"rules": HISTORY_RULES}, images, today=40)
