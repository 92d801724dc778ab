"""`AccessBotError`: the one root of every exception the core raises on purpose.

Each family keeps its own class where it is raised and imported from (`domain.AccessError`,
`durable.StoreError`, `policy.PolicyError`, `audit.AuditError`, `settings.SettingsError`,
`strategies.StrategyError`, ...); they all derive from this one, so a caller that wants
"anything accessbot refused or failed at" catches one class. Imports nothing, so any
module, `domain` included, can build on it.
"""


class AccessBotError(Exception):
    """Something accessbot refused or failed at; the message says what and, where it can,
    what to do instead."""
