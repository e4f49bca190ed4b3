"""EKS Kubernetes versions and the end of their standard support, to keep clusters off extended support.

Past its standard-support end a version bills extended support: $0.60 instead of $0.10 per cluster hour
(about $438 instead of $73 a month). Update this table from the EKS release calendar
(https://docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html) when a version is released:
standard support lasts 14 months from the EKS release, extended support 12 more.
"""

from __future__ import annotations

from datetime import date

# Checked against the calendar as published in early 2026 (1.29 to 1.35). Versions released later are not
# listed: the policy pack reports an unlisted version as unknown rather than guessing its dates.
STANDARD_SUPPORT_END: dict[str, date] = {
    "1.29": date(2025, 3, 23),
    "1.30": date(2025, 7, 23),
    "1.31": date(2025, 11, 26),
    "1.32": date(2026, 3, 23),
    "1.33": date(2026, 7, 29),
    "1.34": date(2026, 12, 2),
    "1.35": date(2027, 3, 27),
}
DEFAULT_VERSION = "1.35"
STANDARD_HOURLY_USD = 0.10
EXTENDED_HOURLY_USD = 0.60
HOURS_PER_MONTH = 730
WARN_DAYS = 60


def support_problem(version: str, today: date, warn_days: int = WARN_DAYS) -> str | None:
    """A one-line warning when `version` is past (or near) the end of standard support, else None."""
    end = STANDARD_SUPPORT_END.get(version)
    if end is None:
        return f"EKS version {version} is not in infra/versions.py: check its standard-support end date"
    extra = round((EXTENDED_HOURLY_USD - STANDARD_HOURLY_USD) * HOURS_PER_MONTH)
    if today > end:
        return (
            f"EKS version {version} left standard support on {end.isoformat()}: the control plane bills "
            f"extended support (about ${extra}/month more); upgrade reviewstream:kubernetesVersion"
        )
    if (end - today).days <= warn_days:
        return f"EKS version {version} leaves standard support on {end.isoformat()} (then about ${extra}/month more)"
    return None
