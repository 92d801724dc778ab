# Examples of granting real access in Okta, GitHub and AWS. This file is NOT loaded
# (its name starts with "_"): copy the resources you need into a policy file of your
# own, such as policies/targets.py, and fill in your ids.
#
# Tokens come from environment variables only (token_env names them); AWS uses the
# usual credential chain (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or the
# instance/task role) and needs `pip install -r requirements-aws.txt`.
# Who each chat user is on GitHub and AWS comes from ACCESS_USER_GITHUB and
# ACCESS_USER_AWS in config.py (or the environment, as JSON); Okta finds people by
# their e-mail (chat profile, or ACCESS_USER_EMAILS); a database login comes from
# ACCESS_USER_DB, else the e-mail's local part.

RESOURCES = {
    "okta-prod-admins": {
        "description": "Okta group Prod Admins (SSO into production consoles)",
        "max_duration": "4h",
        "approvers": ["@alice", "@bob"],
        "channel": "#access-approvals",
        "strategy": {
            "type": "okta_group",
            "org_url": "https://acme.okta.com",
            "group_id": "00g1abcd2EFGH3ijk4x7",  # Okta admin > Groups > the id in the URL
            "token_env": "OKTA_API_TOKEN",  # an API token allowed to manage this group
            # "end_sessions": True,  # at revoke, also clear their Okta sessions and tokens
        },
    },
    "gh-sre": {
        "description": "GitHub team acme/sre",
        "max_duration": "1d",
        "approvers": ["@alice"],
        "channel": "#access-approvals",
        "strategy": {
            "type": "github_team",
            "org": "acme",
            "team": "sre",  # the team's slug, as in its URL
            "token_env": "GITHUB_TOKEN",  # needs admin:org (or a GitHub App with members: write)
            # "api_url": "https://github.acme.com/api/v3",  # GitHub Enterprise Server
        },
    },
    "gh-api-push": {
        "description": "Push to acme/api",
        "max_duration": "8h",
        "approvers": ["@alice"],
        "channel": "#access-approvals",
        "strategy": {
            "type": "github_repo",
            "repo": "acme/api",
            "permission": "push",  # pull, triage, push, maintain or admin
            "token_env": "GITHUB_TOKEN",
        },
    },
    "aws-prod-admins": {
        "description": "IAM group prod-admins in the production account",
        "max_duration": "2h",
        "approvers": ["@alice", "@bob"],
        "channel": "#access-approvals",
        "strategy": {
            "type": "aws_iam_group",
            "group": "prod-admins",
            "region": "us-east-1",  # optional: IAM is global
        },
    },
    "aws-prod-sso": {
        "description": "AdministratorAccess in production via IAM Identity Center",
        "max_duration": "2h",
        "approvers": ["@alice", "@bob"],
        "channel": "#access-approvals",
        "strategy": {
            "type": "aws_sso",
            "instance_arn": "arn:aws:sso:::instance/ssoins-1234567890abcdef",
            "permission_set_arn": "arn:aws:sso:::permissionSet/ssoins-1234567890abcdef/ps-1234567890abcdef",
            "account_id": "123456789012",
            "region": "eu-west-1",  # where Identity Center lives
            # "identity_store_id": "d-1234567890",  # optional: found from the instance
            # "wait": "1m",  # how long to wait for the assignment to be provisioned
        },
    },
    "prod-db-rw": {
        "description": "Role prod_rw on the production PostgreSQL",
        "max_duration": "4h",
        "approvers": ["@alice", "@bob"],
        "channel": "#access-approvals",
        "strategy": {
            "type": "postgres_role",
            # The admin DSN (postgresql://grantor:...@db:5432/prod), from the environment
            # only; its user needs ADMIN OPTION on the role and pg_signal_backend.
            "dsn_env": "PROD_DB_ADMIN_DSN",
            "role": "prod_rw",  # an existing role; logins from ACCESS_USER_DB or e-mail
        },
    },
}
