"""One exception root: every exception class the core defines derives from AccessBotError,
and there is one SettingsError, importable from both of the places it always was."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import accessbot
from accessbot.errors import AccessBotError


def core_modules():
    yield accessbot
    for info in pkgutil.walk_packages(accessbot.__path__, "accessbot."):
        if info.name.rsplit(".", 1)[-1] == "__main__":  # runs the CLI when imported
            continue
        yield importlib.import_module(info.name)


def exception_classes():
    found = {}
    for module in core_modules():
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
            ):
                found[f"{module.__name__}.{name}"] = value
    return found


def test_every_exception_class_under_accessbot_derives_from_accessboterror():
    classes = exception_classes()
    # The families the issue names are among them, so the walk did find the modules.
    for name in (
        "accessbot.domain.AccessError",
        "accessbot.durable.StoreError",
        "accessbot.policy.model.PolicyError",
        "accessbot.audit.AuditError",
        "accessbot.settings.SettingsError",
        "accessbot.strategies.base.StrategyError",
        "accessbot.postgres.database.DatabaseError",
        "accessbot.integrations.slack.signing.SignatureError",
    ):
        assert name in classes, f"{name} not found by the walk"
    outside = sorted(name for name, cls in classes.items() if not issubclass(cls, AccessBotError))
    assert outside == [], f"derive these from accessbot.errors.AccessBotError: {outside}"


def test_one_settings_error_for_access_keys_and_strategy_settings():
    from accessbot import settings, strategies
    from accessbot.strategies import base

    assert settings.SettingsError is strategies.SettingsError is base.SettingsError
    names = [n for n, c in exception_classes().items() if c.__name__ == "SettingsError"]
    assert names == ["accessbot.settings.SettingsError"]

    # An ACCESS_* key: the message is the whole text, as before.
    key_error = settings.SettingsError("ACCESS_TICK_SECONDS must be a number, e.g. 1")
    assert str(key_error) == "ACCESS_TICK_SECONDS must be a number, e.g. 1"
    assert key_error.key is None
    # A strategy setting: "key: message", with any URL's credentials left out.
    strategy_error = strategies.SettingsError("url", "cannot reach https://u:pw@t.example/x?k=1")
    assert strategy_error.key == "url"
    assert "pw" not in str(strategy_error) and str(strategy_error).startswith("url: ")
    assert "pw" not in strategy_error.message


def test_a_caller_can_catch_every_family_with_one_class():
    from accessbot.domain import AccessError
    from accessbot.integrations.slack.payloads import InteractionError

    assert issubclass(AccessError, AccessBotError)
    # Kept: callers that catch ValueError for a malformed Slack payload still do.
    assert issubclass(InteractionError, ValueError)
