"""Configuration: YAML plus CERTMON_* environment, errors naming field and file, secrets kept out."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.settings import ConfigError, load_settings


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "certmon.yaml"
    path.write_text(text)
    return path


def test_yaml_values_relative_paths_and_defaults(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
environment: contoso-prod
production: true
sources:
  clusterconfig: {path: cfg/ClusterConfig.json, interval_seconds: 120}
expiry:
  DataSigning: {warning_days: 60, critical_days: 21}
""",
    )
    settings = load_settings(path)
    assert settings.environment == "contoso-prod" and settings.production
    assert settings.sources.clusterconfig.path == tmp_path / "cfg" / "ClusterConfig.json"
    assert settings.sources.clusterconfig.interval_seconds == 120
    assert settings.data_dir == tmp_path / "certmon-data"
    assert settings.expiry_window("DataSigning").critical_days == 21
    assert settings.expiry_window("DataEncryption").warning_days == 90
    assert settings.expiry_window("RSAT").warning_days == 30


def test_environment_overrides_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, "environment: from-file\nsources:\n  localagent: {path: a.json}\n")
    monkeypatch.setenv("CERTMON_ENVIRONMENT", "from-env")
    monkeypatch.setenv("CERTMON_SOURCES__LOCALAGENT__INTERVAL_SECONDS", "30")
    monkeypatch.setenv("CERTMON_SOURCES__CERTFOLDER__PASSWORD", "s3cret-from-env")
    settings = load_settings(path)
    assert settings.environment == "from-env"
    assert settings.sources.localagent.interval_seconds == 30
    assert settings.sources.localagent.path == tmp_path / "a.json"
    assert settings.sources.certfolder.password_bytes() == b"s3cret-from-env"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            "sources:\n  clusterconfig: {interval_seconds: -5}\n",
            "sources.clusterconfig.interval_seconds: Input should be greater than 0",
        ),
        ("sources:\n  clustercfg: {path: x}\n", "sources.clustercfg: Extra inputs are not permitted"),
        ("expiry:\n  RSAT: {warning_days: 5, critical_days: 10}\n", "critical_days must not exceed warning_days"),
        ("environment: 'bad name!'\n", "environment: String should match pattern"),
        ("- a list\n", "expected a mapping at the top level"),
        ("sources: [unclosed\n", "invalid YAML"),
    ],
)
def test_errors_name_the_field_and_the_file(tmp_path: Path, text: str, fragment: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(path) in str(caught.value) and fragment in str(caught.value)


def test_secrets_in_the_yaml_file_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "sources:\n  certfolder: {path: certs, password: hunter22}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert "sources.certfolder.password: secrets do not belong" in str(caught.value)
    assert "hunter22" not in str(caught.value)


def test_secret_values_never_reach_validation_messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTMON_SOURCES__CERTFOLDER__PASSWORD", "x" * 5)
    monkeypatch.setenv("CERTMON_SOURCES__CERTFOLDER__BOGUS", "topsecretvalue")
    with pytest.raises(ConfigError) as caught:
        load_settings(_write(tmp_path, "{}\n"))
    assert "topsecretvalue" not in str(caught.value)


def test_password_file_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "pw.txt").write_text("from-a-file\r\n")
    settings = load_settings(_write(tmp_path, "sources:\n  certfolder: {path: c, password_file: pw.txt}\n"))
    assert settings.sources.certfolder.password_bytes() == b"from-a-file"
    # A password file that cannot be read is refused when the configuration loads, naming the setting.
    with pytest.raises(
        ConfigError, match=r"sources\.certfolder\.password_file: .*nope\.txt: No such file or directory"
    ):
        load_settings(_write(tmp_path, "sources:\n  certfolder: {path: c, password_file: nope.txt}\n"))
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_settings(tmp_path / "absent.yaml")
