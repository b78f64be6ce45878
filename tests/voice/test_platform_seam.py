"""The registry is the one list of platforms: what each declares lines up with the settings,
the server's routes and the CLI, so a new platform cannot be half wired."""

from __future__ import annotations

from botwire.voice.platforms.registry import BY_NAME, PLATFORMS, routes
import pytest
from botwire.errors import ConfigurationError
from botwire.voice.settings import CORE, SECRETS, VoiceSettings

SETTINGS = set(VoiceSettings.names())


def test_names_are_unique_and_every_platform_has_routes():
    assert len(BY_NAME) == len(PLATFORMS) >= 4
    for platform in PLATFORMS:
        assert platform.routes and platform.replay_ttl > 0 and platform.about


def test_every_route_is_enabled_by_a_setting_of_its_platform():
    for platform, route in routes():
        assert route.secret in SETTINGS, (platform.name, route.path)
        assert route.secret.startswith(platform.name + "_"), (platform.name, route.secret)
        assert route.path.startswith(f"/voice/{platform.name}"), route.path


def test_paths_are_unique():
    paths = [(route.method, route.path) for _, route in routes()]
    assert len(paths) == len(set(paths))


def test_every_option_writes_a_setting_and_secrets_stay_out_of_reprs():
    for platform in PLATFORMS:
        for option in platform.options:
            assert option.setting in SETTINGS, (platform.name, option.setting)
            assert (option.setting in SECRETS) is option.secret, (platform.name, option.setting)


def test_every_secret_belongs_to_a_registered_platform():
    assert {name.split("_", 1)[0] for name in SECRETS} <= set(BY_NAME)
    assert set(VoiceSettings().enabled()) == set(BY_NAME)
    assert not any(VoiceSettings().enabled().values())


def test_the_settings_are_the_shared_ones_and_each_platforms_options():
    own = {o.setting for p in PLATFORMS for o in p.options if o.setting.startswith(p.name + "_")}
    assert SETTINGS == set(CORE) | own
    defaults = VoiceSettings()
    for platform in PLATFORMS:
        for option in platform.options:
            if option.setting in own:
                assert getattr(defaults, option.setting) == option.default


def test_unknown_settings_and_choices_are_refused_by_name():
    with pytest.raises(ConfigurationError, match="unknown voice settings vapi_secrett"):
        VoiceSettings(vapi_secrett="x")
    with pytest.raises(ConfigurationError, match="vapi_auth is 'basic'; it takes secret"):
        VoiceSettings(vapi_auth="basic")


def test_secrets_never_appear_in_the_repr():
    settings = VoiceSettings(**{name: f"very-secret-{name}-value" for name in SECRETS})
    assert "very-secret" not in repr(settings)
    assert all(settings.enabled()[name.split("_", 1)[0]] for name in SECRETS)
    assert all(settings.shown()[name] == "set" for name in SECRETS)
    with pytest.raises(AttributeError):
        settings.budget = 3  # type: ignore[misc]
