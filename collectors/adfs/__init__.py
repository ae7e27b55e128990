"""AD FS farms: federation metadata, OpenID discovery keys and the SSL certificate.

Dependency direction: collector -> metadata (the pure document parsers).
"""

from collectors.adfs.collector import AdfsCollector, AdfsFacts

__all__ = ["AdfsCollector", "AdfsFacts"]
