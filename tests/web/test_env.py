"""Settings from ``VEIL_*`` variables (``veil.web.env``): the defaults, the JWKS cache
timings, bad values refused naming their variable (and never echoing the service
secret), empty values, and every variable documented in the README."""

import os
from pathlib import Path

import pytest

from veil.conference import ConferenceSettings
from veil.conference.settings import ConferenceVariables
from veil.keyserver import KeyServerSettings
from veil.keyserver.settings import KeyServerVariables
from veil.protocol import CONFERENCE_AUDIENCE, KEYSERVER_AUDIENCE, b64encode
from veil.web.jwks import JwksCachePolicy

JWKS_URL = "https://sso.example/jwks"
SECRET = bytes(range(32))


def keyserver(**env: str) -> KeyServerSettings:
    return KeyServerSettings.from_env({"VEIL_JWKS_URL": JWKS_URL, **env}, service_secret=SECRET)


def conference(**env: str) -> ConferenceSettings:
    return ConferenceSettings.from_env({"VEIL_JWKS_URL": JWKS_URL, **env})


def test_unset_variables_leave_the_defaults(tmp_path: Path) -> None:
    made = KeyServerSettings.from_env({"VEIL_JWKS_URL": JWKS_URL, "VEIL_DATA_DIR": str(tmp_path)})
    assert made.database_url == f"sqlite:///{(tmp_path / 'keyserver.sqlite3').as_posix()}"
    assert made.service_secret == (tmp_path / "keyserver.secret").read_bytes()
    assert (made.audience, made.issuer, made.issuer_url) == (
        KEYSERVER_AUDIENCE,
        "veil-dev-idp",
        None,
    )
    assert (made.user_id_claim, made.jwks_cache) == ("sub", JwksCachePolicy())
    assert made.transform_workers == max(1, (os.cpu_count() or 2) - 1)
    plain = conference(VEIL_DATA_DIR=str(tmp_path))
    assert plain.database_url == f"sqlite:///{(tmp_path / 'conference.sqlite3').as_posix()}"
    assert (plain.keyserver_url, plain.audience) == ("http://127.0.0.1:8470", CONFERENCE_AUDIENCE)
    assert (plain.fanout_url, plain.relay_frames_per_second, plain.relay_byte_burst) == (
        None, 500.0, 8_000_000,
    )  # fmt: skip
    assert plain.jwks_cache == JwksCachePolicy()


def test_the_jwks_cache_timings_are_read_from_their_variables() -> None:
    timings = {
        "VEIL_JWKS_REFRESH_SECONDS": "120",
        "VEIL_JWKS_MIN_REFETCH_SECONDS": "2.5",
        "VEIL_JWKS_TIMEOUT_SECONDS": "1",
        "VEIL_JWKS_MAX_STALE_SECONDS": "600",
    }
    expected = JwksCachePolicy(
        refresh_seconds=120, min_refetch_seconds=2.5, timeout_seconds=1, max_stale_seconds=600
    )
    assert keyserver(**timings).jwks_cache == expected
    assert conference(**timings).jwks_cache == expected
    # one set, the others keep their defaults; a policy given by hand wins
    assert conference(VEIL_JWKS_TIMEOUT_SECONDS="2").jwks_cache == JwksCachePolicy(
        timeout_seconds=2
    )
    given = JwksCachePolicy(refresh_seconds=30)
    assert ConferenceSettings.from_env(
        {"VEIL_JWKS_URL": JWKS_URL, **timings}, jwks_cache=given
    ).jwks_cache == given  # fmt: skip


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"VEIL_JWKS_REFRESH_SECONDS": "soon"}, "VEIL_JWKS_REFRESH_SECONDS must be a number"),
        ({"VEIL_JWKS_TIMEOUT_SECONDS": "inf"}, "VEIL_JWKS_TIMEOUT_SECONDS must be a finite number"),
        ({"VEIL_JWKS_MAX_STALE_SECONDS": "nan"}, "VEIL_JWKS_MAX_STALE_SECONDS must be a finite"),
        (
            {"VEIL_JWKS_TIMEOUT_SECONDS": "0"},
            "jwks_cache.timeout_seconds (VEIL_JWKS_TIMEOUT_SECONDS) must be positive",
        ),
        (
            {"VEIL_JWKS_MIN_REFETCH_SECONDS": "600"},
            "need min_refetch_seconds <= refresh_seconds <= max_stale_seconds "
            "(VEIL_JWKS_MIN_REFETCH_SECONDS, VEIL_JWKS_REFRESH_SECONDS, VEIL_JWKS_MAX_STALE",
        ),
        ({"VEIL_TRANSFORM_WORKERS": "1.5"}, "VEIL_TRANSFORM_WORKERS must be an integer"),
        ({"VEIL_JWKS": "{not json"}, "VEIL_JWKS must hold a JSON document"),
        ({"VEIL_JWKS_URL": ""}, "jwks_url must be an http(s) URL"),
        # several at once: each named, in one message
        (
            {"VEIL_TRANSFORM_WORKERS": "many", "VEIL_JWKS_REFRESH_SECONDS": "often"},
            "VEIL_JWKS_REFRESH_SECONDS must be a number; VEIL_TRANSFORM_WORKERS must be an integer",
        ),
    ],
)
def test_a_bad_value_is_refused_naming_its_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        keyserver(**env)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"VEIL_RELAY_FRAME_BURST": "1.5"}, "VEIL_RELAY_FRAME_BURST must be an integer"),
        ({"VEIL_RELAY_BYTES_PER_SECOND": "fast"}, "VEIL_RELAY_BYTES_PER_SECOND must be a number"),
        ({"VEIL_JWKS_REFRESH_SECONDS": "-1"}, "jwks_cache.refresh_seconds (VEIL_JWKS_REFRESH"),
    ],
)
def test_the_conference_services_bad_values_name_their_variables(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError) as caught:
        conference(**env)
    assert message in str(caught.value)


def test_rates_take_fractions() -> None:
    assert conference(VEIL_RELAY_FRAMES_PER_SECOND="0.5").relay_frames_per_second == 0.5


@pytest.mark.parametrize(
    "text",
    [
        "correct-horse-battery-staple-but-not-32-bytes",  # not base64url of 32 bytes
        b64encode(SECRET[:31]),  # base64url, one byte short
        b64encode(SECRET + b"!"),  # one byte over
        "",  # set but empty: refused, never replaced by a new secret
    ],
)
def test_a_bad_service_secret_is_refused_without_echoing_it(tmp_path: Path, text: str) -> None:
    env = {"VEIL_JWKS_URL": JWKS_URL, "VEIL_DATA_DIR": str(tmp_path), "VEIL_SERVICE_SECRET": text}
    with pytest.raises(ValueError) as caught:
        KeyServerSettings.from_env(env)
    message = str(caught.value)
    assert (
        message == "VEIL_SERVICE_SECRET must be 32 random bytes, base64url-encoded (43 characters)"
    )
    assert not (tmp_path / "keyserver.secret").exists()


def test_the_service_secret_is_read_and_never_shown() -> None:
    text = b64encode(SECRET)
    env = {"VEIL_JWKS_URL": JWKS_URL, "VEIL_SERVICE_SECRET": text}
    assert KeyServerSettings.from_env(env).service_secret == SECRET
    variables = KeyServerVariables.read(env)
    assert variables.service_secret == SECRET
    assert text not in repr(variables) and str(SECRET) not in repr(variables)
    assert text not in repr(KeyServerSettings.from_env(env))


def test_empty_values_mean_unset_where_they_always_did(tmp_path: Path) -> None:
    made = conference(
        VEIL_DATA_DIR=str(tmp_path),
        VEIL_DATABASE_URL="",
        VEIL_JWT_ISSUER="",
        VEIL_JWT_ISSUER_URL="",
        VEIL_JWT_USER_ID_CLAIM="",
        VEIL_FANOUT_URL="",
    )
    assert made.database_url == f"sqlite:///{(tmp_path / 'conference.sqlite3').as_posix()}"
    assert (made.issuer, made.issuer_url, made.user_id_claim, made.fanout_url) == (
        "veil-dev-idp", None, "sub", None,
    )  # fmt: skip


def test_the_conference_service_reads_its_own_database_variable_first() -> None:
    both = {"VEIL_DATABASE_URL": "sqlite:///shared.db", "VEIL_CONFERENCE_DATABASE_URL": ""}
    assert conference(**both).database_url == "sqlite:///shared.db"
    both["VEIL_CONFERENCE_DATABASE_URL"] = "sqlite:///conference.db"
    assert conference(**both).database_url == "sqlite:///conference.db"
    env = {"VEIL_JWKS_URL": JWKS_URL, **both}
    assert ConferenceSettings.from_env(env, database_url="sqlite:///x.db").database_url == (
        "sqlite:///x.db"
    )


def test_from_env_reads_the_process_environment_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VEIL_JWKS_URL", JWKS_URL)
    monkeypatch.setenv("VEIL_JWKS_REFRESH_SECONDS", "60")
    monkeypatch.setenv("VEIL_FANOUT_URL", "redis://127.0.0.1:6379")
    made = ConferenceSettings.from_env()
    assert (made.jwks_cache.refresh_seconds, made.fanout_url) == (60, "redis://127.0.0.1:6379")


def test_every_variable_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    names = {*KeyServerVariables.variable_names(), *ConferenceVariables.variable_names()}
    assert len(names) > 15
    assert sorted(name for name in names if f"`{name}`" not in readme) == []
