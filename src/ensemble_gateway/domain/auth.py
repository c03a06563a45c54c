"""Who is calling: from an IAM principal to the client records that may represent it."""

from __future__ import annotations

import re

_ASSUMED_ROLE = re.compile(r"^arn:(?P<partition>aws[a-z-]*):sts::(?P<account>\d{12}):assumed-role/(?P<role>[^/]+)/.+$")


def principal_candidates(principal_arn: str) -> list[str]:
    """The ARNs a client may be registered under, most specific first.

    A caller using a role arrives as ``arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION``; the session
    name changes from caller to caller, so the role's own ARN (``arn:aws:iam::ACCOUNT:role/ROLE``) is
    what a client is registered with. Roles with a path cannot be told from their session ARN: register
    those under the session ARN pattern's role name without the path.
    """
    candidates = [principal_arn]
    match = _ASSUMED_ROLE.match(principal_arn)
    if match:
        candidates.append(f"arn:{match['partition']}:iam::{match['account']}:role/{match['role']}")
    return candidates
