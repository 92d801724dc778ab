"""ACCESS_WEBSERVER applied to errbot's webserver (the core `Webserver` plugin), so the
listener that serves /health, /metrics and /slack/interactive is set where the bot's other
settings are (the environment of the systemd unit or the container), not only with
`errbot --storage-merge` in one data folder."""

from __future__ import annotations

import logging

from accessbot.settings import SettingsError, listener

log = logging.getLogger(__name__)

WEBSERVER = "Webserver"


def apply_listener(plugin_manager, config) -> str:
    """Configure and (re)start errbot's webserver as ACCESS_WEBSERVER says; unset leaves
    errbot's stored configuration alone. What was done, for the log."""
    try:
        where = listener(config)
    except SettingsError as exc:
        log.error("the webserver was left as it was: %s", exc)
        return f"not changed: {exc}"
    if where is None:
        return "not changed: ACCESS_WEBSERVER is unset"
    webserver = plugin_manager.get_plugin_obj_by_name(WEBSERVER)
    if webserver is None:
        log.error("ACCESS_WEBSERVER is set, but errbot's Webserver plugin is not loaded")
        return "not loaded"
    if where == "off":
        wanted = None
    else:
        host, port = where
        wanted = {"HOST": host, "PORT": port, "SSL": None}
    running = webserver.is_activated
    if plugin_manager.get_plugin_configuration(WEBSERVER) == wanted and (running or not wanted):
        return "as configured"
    plugin_manager.set_plugin_configuration(WEBSERVER, wanted)
    if running:
        plugin_manager.deactivate_plugin(WEBSERVER)
    if wanted is None:
        log.info("the webserver is off (ACCESS_WEBSERVER=off)")
        return "off"
    plugin_manager.activate_plugin(WEBSERVER)
    log.info("the webserver listens on %s:%d (ACCESS_WEBSERVER)", *where)
    return f"{where[0]}:{where[1]}"
