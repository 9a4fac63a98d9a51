from gis.settings import load_settings, redact_dsn


def test_settings_prefix_and_redaction():
    s = load_settings({"DATABASE_URL": "postgresql://app:hunter2@db:5432/g", "GRIDGOV_PORT": "8080"})
    assert s.port == 8080
    d = s.describe()
    assert "hunter2" not in str(d) and "***" in d["database_url"]
    assert redact_dsn("host=x password=abc user=u") == "host=x password=*** user=u"


def test_prefixed_url_wins():
    s = load_settings({"DATABASE_URL": "postgresql://a@x/1", "GRIDGOV_DATABASE_URL": "postgresql://b@y/2"})
    assert s.database_url.endswith("/2")


def test_session_secret_persists_in_data_dir(tmp_path):
    import os

    from gis.settings import Settings, session_secret

    s = Settings(data_dir=tmp_path)
    k1 = session_secret(s)
    assert len(k1) == 64 and session_secret(s) == k1
    assert oct(os.stat(tmp_path / "secret_key").st_mode & 0o777) == "0o600"
    assert session_secret(Settings(data_dir=tmp_path, secret_key="given")) == "given"
