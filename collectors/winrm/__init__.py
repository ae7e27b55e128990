"""Windows nodes over WinRM: certificate stores, private-key providers and SQL Server TLS certificates."""

from collectors.winrm.collector import WinRMCollector, WinRMOptions

__all__ = ["WinRMCollector", "WinRMOptions"]
