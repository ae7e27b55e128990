"""How certmon logs on to SQL Server: Windows integrated authentication (no password) or SQL authentication.

Windows integrated authentication is `Trusted_Connection=yes` for Microsoft's ODBC Driver 17/18 for SQL
Server: on Windows the driver uses SSPI with the logon of the process (a gMSA running the service
works, nothing is stored); on Linux the same keyword makes the driver use Kerberos from the
credential cache (KRB5CCNAME) or the client keytab (KRB5_CLIENT_KTNAME) of the service account, with
the server's MSSQLSvc/<host>:<port> SPN registered in the domain.
"""

from __future__ import annotations

from collectors.sql.connstring import build_connection_string, keyword, parse_connection_string, with_keywords

_USER_KEYWORDS = ("uid", "user id", "user", "username")


def integrated_auth_conflict(connection_string: str, has_password: bool) -> str | None:
    """Why `integrated_auth` cannot apply to this database (None when it can)."""
    pairs = parse_connection_string(connection_string)
    user = [k for k, _ in pairs if k.lower() in _USER_KEYWORDS]
    if user:
        return f"integrated_auth logs on as the service itself: remove {user[0]}= from connection_string"
    if has_password:
        return "integrated_auth needs no password: remove password_file (or the PASSWORD variable)"
    trusted = keyword(pairs, "Trusted_Connection").strip().lower()
    if trusted and trusted not in ("yes", "true"):
        return f"integrated_auth contradicts Trusted_Connection={trusted} in connection_string"
    return None


def with_integrated_auth(connection_string: str) -> str:
    """The connection string with Trusted_Connection=yes (kept as written when it already says so)."""
    pairs = parse_connection_string(connection_string)
    return build_connection_string(with_keywords(pairs, {"Trusted_Connection": "yes"}))


def describe_sql_auth(connection_string: str, has_password: bool) -> str:
    """One line for check-config: whose credentials the database sees (never the secret)."""
    pairs = parse_connection_string(connection_string)
    trusted = keyword(pairs, "Trusted_Connection").strip().lower() in ("yes", "true")
    if trusted:
        return (
            "Windows integrated authentication (Trusted_Connection=yes), no password: the service's own "
            "logon (Windows: SSPI, a gMSA works; Linux driver: Kerberos ccache or KRB5_CLIENT_KTNAME keytab)"
        )
    user = keyword(pairs, *_USER_KEYWORDS)
    if user:
        where = "a password" if has_password else "NO password configured"
        return f"SQL authentication as {user} with {where}"
    return "as the connection string says (no user name, no Trusted_Connection)"
