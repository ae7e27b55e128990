"""TLS and TDS endpoints: the handshake client, the TDS pre-login wrapper, chain validation and the collector.

Dependency direction: collector -> tds -> client; collector -> chain. Nothing here imports another source.
"""

from collectors.tls.collector import DEFAULT_PORTS, Endpoint, TlsCollector, TlsEndpointFacts

__all__ = ["DEFAULT_PORTS", "Endpoint", "TlsCollector", "TlsEndpointFacts"]
