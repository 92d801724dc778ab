"""AWS strategies: IAM group membership, and IAM Identity Center account assignments.

Both need boto3 (`pip install -r requirements-aws.txt`) and take credentials from the
usual AWS chain (environment, profile, instance or task role); a policy naming them on
a bot without boto3 fails to load with that advice. `endpoint_url` points at another
endpoint (a VPC endpoint, or a test server). Neither target knows about expiry, so
`extend` needs no call. `members()` lists the IAM group's users, or the permission
set's assignments in the account (users, and groups, which give it to all their members).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

from ..safe_text import redact_url
from .base import Done, Member, Sessions, SettingsError, Strategy, StrategyError, target_host

_ACCOUNT_ID = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_ISO_DURATION = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?$")
MAX_SESSION = 12 * 3600  # seconds: the longest an AWS role or permission set session lasts
ROLE_SESSIONS = Sessions(
    "may_last", "AWS role sessions assumed with the group's permissions", MAX_SESSION
)
SSO_SESSIONS = "AWS console and CLI sessions of the permission set"
POLL_INTERVAL = 1.0  # seconds between looks at an Identity Center provisioning request
GROUP_ACCOUNT = "group:"  # an Identity Center group as a member: "group:<group id>"


def _boto():
    try:
        import boto3
        import botocore.config
        import botocore.exceptions
    except ImportError:
        return None
    return boto3, botocore


_loader = None


def _session():
    """A fresh boto3 session (so credentials are looked up anew each call) that shares
    one model loader: reading the service models is most of a client's cost."""
    global _loader
    import boto3
    import botocore.loaders
    import botocore.session

    if _loader is None:
        _loader = botocore.loaders.create_loader()
    core = botocore.session.Session()
    core.register_component("data_loader", _loader)
    return boto3.session.Session(botocore_session=core)


def _require_boto(kind: str) -> None:
    if _boto() is None:
        raise SettingsError(
            "strategy.type",
            f"{kind} needs boto3, which is not installed: pip install -r requirements-aws.txt",
        )


class _AwsStrategy(Strategy):
    service_label = "AWS"

    def __init__(self, region: str, endpoint_url: str | None, timeout: float):
        self.region = region
        self.endpoint_url = endpoint_url
        self.timeout = timeout

    @classmethod
    def common_settings(cls, settings: dict, default_region: str | None) -> dict:
        region = cls.text_setting(settings, "region", "us-east-1", required=default_region is None)
        region = region or default_region
        if not _REGION.match(region):
            raise SettingsError(
                "strategy.region", f"{region!r} is not an AWS region like 'us-east-1'"
            )
        return {
            "region": region,
            "endpoint_url": cls.url_setting(
                settings, "endpoint_url", "https://iam.amazonaws.com", required=False
            ),
            "timeout": cls.timeout_setting(settings, "10s"),
        }

    def client(self, service: str):
        boto = _boto()
        if boto is None:
            raise StrategyError("boto3 is not installed: pip install -r requirements-aws.txt")
        _, botocore = boto
        config = botocore.config.Config(
            connect_timeout=self.timeout,
            read_timeout=self.timeout,
            retries={"max_attempts": 3, "mode": "standard"},  # throttling is retried here
        )
        return _session().client(
            service, region_name=self.region, endpoint_url=self.endpoint_url, config=config
        )

    def aws(self, doing: str, fn: Callable, **kwargs):
        """Run one AWS call; turn every botocore failure into a StrategyError in AWS's words."""
        _, botocore = _boto()
        exceptions = botocore.exceptions
        try:
            return fn(**kwargs)
        except exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            raise AwsError(
                f"{self.service_label} refused to {doing}: {error.get('Code', 'error')}: "
                f"{error.get('Message', '')}".rstrip(": "),
                code=error.get("Code", ""),
            ) from exc
        except (exceptions.NoCredentialsError, exceptions.PartialCredentialsError) as exc:
            raise StrategyError(
                f"no AWS credentials to {doing}: set AWS_PROFILE or AWS_ACCESS_KEY_ID/"
                "AWS_SECRET_ACCESS_KEY, or run the bot with an instance or task role"
            ) from exc
        except (exceptions.ConnectTimeoutError, exceptions.ReadTimeoutError) as exc:
            raise StrategyError(
                f"{self.service_label} did not answer within {self.timeout:g}s ({doing})"
            ) from exc
        except exceptions.EndpointConnectionError as exc:
            raise StrategyError(f"{self.service_label} is unreachable ({doing}): {exc}") from exc
        except exceptions.BotoCoreError as exc:
            raise StrategyError(f"{self.service_label} failed to {doing}: {exc}") from exc

    def _where(self) -> str:
        return f" via {redact_url(self.endpoint_url)}" if self.endpoint_url else ""


class AwsError(StrategyError):
    def __init__(self, message: str, code: str = ""):
        super().__init__(message)
        self.code = code


class AwsIamGroupStrategy(_AwsStrategy):
    """Add the requester's IAM user (from ACCESS_USER_AWS) to an IAM group, and remove it.

    The grant records the user's UserId (and name); an IAM user can be renamed, so the
    revoke finds the group member with that UserId and removes it by its current name.
    """

    kind = "aws_iam_group"
    service_label = "AWS IAM"
    allowed_keys = frozenset({"type", "group", "region", "endpoint_url", "timeout"})

    def __init__(self, group: str, **common):
        super().__init__(**common)
        self.group = group

    @classmethod
    def from_settings(cls, settings: dict) -> AwsIamGroupStrategy:
        cls.check_keys(settings)
        group = cls.text_setting(settings, "group", "prod-admins")
        if not re.match(r"^[\w+=,.@-]{1,128}$", group):
            raise SettingsError("strategy.group", f"{group!r} is not an IAM group name")
        common = cls.common_settings(settings, default_region="us-east-1")  # IAM is global
        _require_boto(cls.kind)
        return cls(group, **common)

    def call(self, action: str, payload: dict) -> Done:
        if action == "extend":
            return Done("IAM group memberships do not expire; nothing to extend")
        if action not in ("grant", "revoke"):
            raise StrategyError(f"aws_iam_group cannot {action!r}")
        iam = self.client("iam")
        account = payload.get("account")
        if action == "grant" or not account:
            name = self.account("aws", payload["user"])
            user = self._user(iam, name, revoking=action == "revoke")
            account = user["UserId"]
        if action == "grant":
            # AddUserToGroup is idempotent: adding a member again succeeds.
            self.aws(
                f"add IAM user {name} to group {self.group}",
                iam.add_user_to_group,
                GroupName=self.group,
                UserName=name,
            )
            return Done(f"AWS IAM: {name} added to group {self.group}", account, user)
        # User names can be changed (UpdateUser); the UserId cannot. The group's members,
        # read in full, say whether the user is still in it and by what name.
        name = self._member_name(iam, account)
        if name is None:
            return Done(f"AWS IAM: user {account} was not in group {self.group}", account)
        self.aws(
            f"remove IAM user {name} from group {self.group}",
            iam.remove_user_from_group,
            GroupName=self.group,
            UserName=name,
        )
        return Done(f"AWS IAM: {name} removed from group {self.group}", account)

    def _user(self, iam, name: str, revoking: bool) -> dict:
        """`{"UserName", "UserId"}` of the IAM user called `name` now."""
        try:
            found = self.aws(f"find IAM user {name}", iam.get_user, UserName=name)["User"]
        except AwsError as exc:
            if exc.code != "NoSuchEntity" or not revoking:
                raise
            raise StrategyError(
                f"AWS IAM has no user {name} any more (renamed or deleted?), and this grant "
                "is older than recorded user ids, so the bot cannot tell whether they are "
                f"still in group {self.group}: put their current name in ACCESS_USER_AWS "
                "(the revoke is retried), or check by hand"
            ) from exc
        return {"UserName": found["UserName"], "UserId": found["UserId"]}

    def members(self, resource: str) -> list[Member]:
        return [
            Member(user["UserName"], None, user["UserId"])
            for user in self._group_users(self.client("iam"))
        ]

    def _member_name(self, iam, user_id: str) -> str | None:
        """The current name of the member of the group whose UserId is `user_id`, or None
        when no member has that id (a missing group is a failure, not "not a member")."""
        for user in self._group_users(iam):
            if user.get("UserId") == user_id:
                return user["UserName"]
        return None

    def _group_users(self, iam) -> list[dict]:
        """The group's users, every page (a missing group is a failure)."""
        paginator = iam.get_paginator("get_group")
        pages = self.aws(
            f"list the members of IAM group {self.group}",
            lambda: list(paginator.paginate(GroupName=self.group)),
        )
        return [user for page in pages for user in page.get("Users", [])]

    def sessions_at_revoke(self) -> Sessions:
        # The group's own policies stop applying to the user's requests at once (IAM
        # evaluates every request), but a role session assumed with them lives to its end.
        return ROLE_SESSIONS

    def target_key(self) -> tuple:
        return (self.kind, target_host(self.endpoint_url), self.group)

    def describe(self) -> str:
        return f"aws_iam_group ({self.group}{self._where()})"


REVOKE_OLDER_SID = "AccessbotRevokeOlderSessions"
REVOKED_OLDER = Sessions(
    "ended", "AWS console and CLI sessions of the permission set (everyone's, who sign in again)"
)


def revoke_older_sessions(current: str | None, before: str) -> dict:
    """The permission set's inline policy with our Deny on sessions issued before `before`
    in place of an earlier one (AWS's "revoke older sessions"); its other statements kept."""
    try:
        policy = json.loads(current) if current else {}
    except ValueError as exc:
        raise StrategyError("the permission set's inline policy is not JSON") from exc
    if not isinstance(policy, dict):
        policy = {}
    statements = policy.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    kept = [s for s in statements if not (isinstance(s, dict) and s.get("Sid") == REVOKE_OLDER_SID)]
    kept.append(
        {
            "Sid": REVOKE_OLDER_SID,
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"DateLessThan": {"aws:TokenIssueTime": before}},
        }
    )
    return {"Version": policy.get("Version", "2012-10-17"), "Statement": kept}


class AwsSsoStrategy(_AwsStrategy):
    """IAM Identity Center: assign a permission set in one account to the requester.

    The requester is found in the Identity Store by user name (ACCESS_USER_AWS) or else
    by e-mail, and their Identity Store user id (the assignment's PrincipalId) is
    recorded at grant; the revoke acts on that id. Creating and deleting an assignment are asynchronous in AWS: the status is
    polled until it succeeds or fails, for at most `wait`.
    """

    kind = "aws_sso"
    service_label = "AWS IAM Identity Center"
    allowed_keys = frozenset(
        {
            "type",
            "instance_arn",
            "permission_set_arn",
            "account_id",
            "identity_store_id",
            "region",
            "endpoint_url",
            "timeout",
            "wait",
            "end_sessions",
        }
    )

    def __init__(
        self,
        instance_arn: str,
        permission_set_arn: str,
        account_id: str,
        identity_store_id: str | None,
        wait: float,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        **common,
    ):
        super().__init__(**common)
        self.instance_arn = instance_arn
        self.permission_set_arn = permission_set_arn
        self.account_id = account_id
        self.identity_store_id = identity_store_id
        self.wait = wait
        self.sleep = sleep
        self.monotonic = monotonic

    @classmethod
    def from_settings(cls, settings: dict, **wiring) -> AwsSsoStrategy:
        cls.check_keys(settings)
        instance_arn = cls.text_setting(
            settings, "instance_arn", "arn:aws:sso:::instance/ssoins-1234567890abcdef"
        )
        if not instance_arn.startswith("arn:") or ":instance/" not in instance_arn:
            raise SettingsError(
                "strategy.instance_arn",
                f"{instance_arn!r} is not an Identity Center instance ARN "
                "(arn:aws:sso:::instance/ssoins-...)",
            )
        permission_set_arn = cls.text_setting(
            settings,
            "permission_set_arn",
            "arn:aws:sso:::permissionSet/ssoins-1234567890abcdef/ps-1234567890abcdef",
        )
        if not permission_set_arn.startswith("arn:") or "/ps-" not in permission_set_arn:
            raise SettingsError(
                "strategy.permission_set_arn",
                f"{permission_set_arn!r} is not a permission set ARN "
                "(arn:aws:sso:::permissionSet/ssoins-.../ps-...)",
            )
        account_id = settings.get("account_id")
        if account_id is None:
            raise SettingsError("strategy.account_id", "is required, e.g. '123456789012'")
        account_id = str(account_id).strip()
        if not _ACCOUNT_ID.match(account_id):
            raise SettingsError(
                "strategy.account_id", f"{account_id!r} is not a 12-digit AWS account id"
            )
        identity_store_id = cls.text_setting(
            settings, "identity_store_id", "d-1234567890", required=False
        )
        common = cls.common_settings(settings, default_region=None)
        wait = cls.duration_setting(settings, "wait", "1m")
        end_sessions = settings.get("end_sessions", False)
        if not isinstance(end_sessions, bool):
            raise SettingsError("strategy.end_sessions", "must be True or False")
        _require_boto(cls.kind)
        strategy = cls(
            instance_arn,
            permission_set_arn,
            account_id,
            identity_store_id,
            wait,
            **common,
            **wiring,
        )
        strategy.end_sessions = end_sessions
        return strategy

    def call(self, action: str, payload: dict) -> Done:
        if action == "extend":
            return Done("Identity Center assignments do not expire; nothing to extend")
        if action not in ("grant", "revoke"):
            raise StrategyError(f"aws_sso cannot {action!r}")
        sso = self.client("sso-admin")
        name, principal_type, principal = self._target_principal(sso, action, payload)
        assignment = {
            "InstanceArn": self.instance_arn,
            "TargetId": self.account_id,
            "TargetType": "AWS_ACCOUNT",
            "PermissionSetArn": self.permission_set_arn,
            "PrincipalType": principal_type,
            "PrincipalId": principal,
        }
        # The account as recorded: a group's carries its prefix.
        principal_id = GROUP_ACCOUNT + principal if principal_type == "GROUP" else principal
        assigned = {"PrincipalType": principal_type, "PrincipalId": principal} in (
            self._assignments(sso)
        )
        what = f"{self._permission_set_name()} in {self.account_id} for {name}"
        if action == "grant":
            if assigned:
                return Done(f"Identity Center: {what} was already assigned", principal_id)
            started = self.aws(f"assign {what}", sso.create_account_assignment, **assignment)[
                "AccountAssignmentCreationStatus"
            ]
            self._wait_until_done(
                sso, started, "create", sso.describe_account_assignment_creation_status
            )
            return Done(f"Identity Center: assigned {what}", principal_id)
        if not assigned:
            return self._older_sessions_ended(
                sso, Done(f"Identity Center: {what} was not assigned", principal_id)
            )
        # Asked before the deletion, whose wait is the last thing the call does.
        sessions = None if self.end_sessions else self._sessions_left(sso)
        started = self.aws(
            f"remove the assignment of {what}", sso.delete_account_assignment, **assignment
        )["AccountAssignmentDeletionStatus"]
        self._wait_until_done(
            sso, started, "delete", sso.describe_account_assignment_deletion_status
        )
        return self._older_sessions_ended(
            sso, Done(f"Identity Center: removed {what}", principal_id, sessions=sessions)
        )

    def _older_sessions_ended(self, sso, done: Done) -> Done:
        """With `end_sessions`: deny everything to the permission set's sessions issued
        before now (AWS's "revoke older sessions": a Deny on `aws:TokenIssueTime` in the
        permission set's inline policy, kept beside its other statements), provisioned to
        the account. Everyone's older sessions of it end: the others sign in again."""
        if not self.end_sessions:
            return done
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        where = {"InstanceArn": self.instance_arn, "PermissionSetArn": self.permission_set_arn}
        name = self._permission_set_name()
        current = self.aws(
            f"read the inline policy of {name}", sso.get_inline_policy_for_permission_set, **where
        ).get("InlinePolicy")
        policy = revoke_older_sessions(current, now)
        self.aws(
            f"deny sessions of {name} issued before {now}",
            sso.put_inline_policy_to_permission_set,
            InlinePolicy=json.dumps(policy),
            **where,
        )
        started = self.aws(
            f"provision {name} to {self.account_id}",
            sso.provision_permission_set,
            TargetId=self.account_id,
            TargetType="AWS_ACCOUNT",
            **where,
        )["PermissionSetProvisioningStatus"]
        self._wait_until_done(
            sso, started, "provision", sso.describe_permission_set_provisioning_status
        )
        return Done(
            f"{done.note}; its sessions issued before {now} denied",
            done.account,
            sessions=REVOKED_OLDER,
        )

    def _sessions_left(self, sso) -> Sessions:
        """How long the sessions of the permission set opened before may last: its
        SessionDuration (PT1H when it sets none); the 12-hour most when AWS does not say."""
        try:
            described = self.aws(
                f"describe {self._permission_set_name()}",
                sso.describe_permission_set,
                InstanceArn=self.instance_arn,
                PermissionSetArn=self.permission_set_arn,
            )
        except StrategyError:
            return self.sessions_at_revoke()  # the revoke worked; only its length is unknown
        length = (described.get("PermissionSet") or {}).get("SessionDuration") or "PT1H"
        found = _ISO_DURATION.match(str(length))
        if not found or not any(found.groups()):
            return self.sessions_at_revoke()
        hours, minutes, seconds = (int(part or 0) for part in found.groups())
        return Sessions("may_last", SSO_SESSIONS, hours * 3600 + minutes * 60 + seconds)

    end_sessions = False  # from_settings sets the policy's `end_sessions`

    def sessions_at_revoke(self) -> Sessions:
        if self.end_sessions:
            return REVOKED_OLDER
        # Removing an assignment stops new sign-ins to it; credentials already handed out
        # live to the end of the permission set's session, 12 hours at most.
        return Sessions("may_last", SSO_SESSIONS, MAX_SESSION)

    def _target_principal(self, sso, action: str, payload: dict) -> tuple[str, str, str]:
        """(how to name it, USER or GROUP, the principal id) the call acts on."""
        account = payload.get("account")
        if action == "grant" or not account:
            name, user_id = self._principal(sso, payload, revoking=action == "revoke")
            return name, "USER", user_id
        if account.startswith(GROUP_ACCOUNT):
            # A group's assignment, found and removed by the standing-access sweep.
            return f"group {account[len(GROUP_ACCOUNT) :]}", "GROUP", account[len(GROUP_ACCOUNT) :]
        # The recorded Identity Store user id: assignments name their principal by it,
        # so a changed user name or e-mail does not matter.
        return f"user {account}", "USER", account

    def _principal(self, sso, payload: dict, revoking: bool) -> tuple[str, str]:
        """The requester's Identity Store user id, by ACCESS_USER_AWS name or else e-mail."""
        name = (self.accounts and self.accounts.find("aws", payload["user"])) or None
        if name:
            attribute = {"AttributePath": "UserName", "AttributeValue": name}
        elif payload.get("user_email"):
            name = payload["user_email"]
            attribute = {"AttributePath": "emails.value", "AttributeValue": name}
        else:
            raise StrategyError(
                f"no AWS user name or e-mail for @{payload['user']}: add it to ACCESS_USER_AWS"
            )
        store_id = self.identity_store_id or self._identity_store_id(sso)
        identitystore = self.client("identitystore")
        try:
            found = self.aws(
                f"find the Identity Center user {name}",
                identitystore.get_user_id,
                IdentityStoreId=store_id,
                AlternateIdentifier={"UniqueAttribute": attribute},
            )
        except AwsError as exc:
            if exc.code != "ResourceNotFoundException":
                raise
            how = "e-mail" if attribute["AttributePath"] == "emails.value" else "user name"
            if revoking:
                # Renamed, or deleted: a missing name proves nothing about who still
                # holds the assignment.
                raise StrategyError(
                    f"Identity Center has no user with the {how} {name} any more (store "
                    f"{store_id}), and this grant is older than recorded user ids, so the "
                    "bot cannot tell whether the assignment is still in place: put their "
                    "current user name in ACCESS_USER_AWS (the revoke is retried), or "
                    "check by hand"
                ) from exc
            raise StrategyError(
                f"Identity Center has no user with the {how} {name} (store {store_id})"
            ) from exc
        return name, found["UserId"]

    def _identity_store_id(self, sso) -> str:
        paginator = sso.get_paginator("list_instances")
        pages = self.aws("list the Identity Center instances", lambda: list(paginator.paginate()))
        for page in pages:
            for instance in page.get("Instances", []):
                if instance.get("InstanceArn") == self.instance_arn:
                    return instance["IdentityStoreId"]
        raise StrategyError(
            f"there is no Identity Center instance {self.instance_arn} in {self.region}; "
            "check instance_arn and region (or set identity_store_id)"
        )

    def _assignments(self, sso) -> list[dict]:
        """`{"PrincipalType", "PrincipalId"}` of every assignment of the permission set in
        the account, every page."""
        paginator = sso.get_paginator("list_account_assignments")
        pages = self.aws(
            f"list the assignments in account {self.account_id}",
            lambda: list(
                paginator.paginate(
                    InstanceArn=self.instance_arn,
                    AccountId=self.account_id,
                    PermissionSetArn=self.permission_set_arn,
                )
            ),
        )
        return [
            {"PrincipalType": a.get("PrincipalType"), "PrincipalId": a.get("PrincipalId")}
            for page in pages
            for a in page.get("AccountAssignments", [])
        ]

    def members(self, resource: str) -> list[Member]:
        """Each assignment's principal, named from the Identity Store: a user by user
        name and e-mail; a group as `group:<id>`, since all its members hold the access."""
        sso = self.client("sso-admin")
        assignments = self._assignments(sso)
        if not assignments:
            return []
        store_id = self.identity_store_id or self._identity_store_id(sso)
        identitystore = self.client("identitystore")
        found = []
        for assignment in assignments:
            kind, principal = assignment["PrincipalType"], assignment["PrincipalId"]
            if kind == "GROUP":
                group = self._described(identitystore.describe_group, store_id, GroupId=principal)
                name = group.get("DisplayName") or principal
                found.append(
                    Member(f"group {name}", None, GROUP_ACCOUNT + principal, "group assignment")
                )
                continue
            user = self._described(identitystore.describe_user, store_id, UserId=principal)
            emails = user.get("Emails") or []
            email = next((e.get("Value") for e in emails if e.get("Primary")), None) or next(
                (e.get("Value") for e in emails if e.get("Value")), None
            )
            found.append(Member(user.get("UserName") or principal, email, principal))
        return found

    def _described(self, describe: Callable, store_id: str, **principal) -> dict:
        """The Identity Store's record of a principal; {} when it has none any more (the
        assignment outlived its user or group, and still is one)."""
        try:
            return self.aws(
                f"describe {next(iter(principal.values()))} in the Identity Store",
                describe,
                IdentityStoreId=store_id,
                **principal,
            )
        except AwsError as exc:
            if exc.code != "ResourceNotFoundException":
                raise
            return {}

    def _wait_until_done(self, sso, status: dict, verb: str, describe: Callable) -> None:
        """Poll a provisioning request until it leaves IN_PROGRESS, for at most `wait`."""
        request_id = status.get("RequestId", "")
        deadline = self.monotonic() + self.wait
        key = {
            "create": "AccountAssignmentCreationRequestId",
            "delete": "AccountAssignmentDeletionRequestId",
            "provision": "ProvisionPermissionSetRequestId",
        }[verb]
        what = "the permission set" if verb == "provision" else "the assignment"
        while status.get("Status") == "IN_PROGRESS":
            if self.monotonic() >= deadline:
                raise StrategyError(
                    f"Identity Center is still working on the {verb} after {self.wait:g}s "
                    f"(request {request_id}); it is checked again on the next try"
                )
            self.sleep(POLL_INTERVAL)
            answer = self.aws(
                f"check the {verb} request {request_id}",
                describe,
                InstanceArn=self.instance_arn,
                **{key: request_id},
            )
            status = next(
                v
                for k, v in answer.items()
                if k.startswith(("AccountAssignment", "PermissionSetProvisioning"))
            )
        if status.get("Status") != "SUCCEEDED":
            raise StrategyError(
                f"Identity Center could not {verb} {what}: "
                f"{status.get('Status', 'unknown status')}: "
                f"{status.get('FailureReason') or 'no reason given'} (request {request_id})"
            )

    def _permission_set_name(self) -> str:
        return "permission set " + self.permission_set_arn.rsplit("/", 1)[-1]

    def target_key(self) -> tuple:
        where = target_host(self.endpoint_url)
        return (self.kind, where, self.instance_arn, self.permission_set_arn, self.account_id)

    def describe(self) -> str:
        return f"aws_sso ({self._permission_set_name()} in {self.account_id}{self._where()})"
