"""Resolving IAM principals to the ARNs a client may be registered under."""

from ensemble_gateway.domain.auth import principal_candidates


def test_an_assumed_role_session_maps_to_its_role() -> None:
    # GIVEN the caller ARN API Gateway reports for a role session
    caller = "arn:aws:sts::123456789012:assumed-role/claims-system/i-0abc123"

    # WHEN the candidates are computed
    candidates = principal_candidates(caller)

    # THEN the session ARN comes first, then the role every session of it shares
    assert candidates == [caller, "arn:aws:iam::123456789012:role/claims-system"]


def test_a_user_maps_only_to_itself() -> None:
    user = "arn:aws:iam::123456789012:user/alice"
    assert principal_candidates(user) == [user]


def test_other_partitions_keep_their_partition() -> None:
    caller = "arn:aws-us-gov:sts::123456789012:assumed-role/r/s"
    assert principal_candidates(caller)[1] == "arn:aws-us-gov:iam::123456789012:role/r"
