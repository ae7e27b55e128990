"""Simulated peers (lab environment, Windows nodes, gateways) for the demo and the tests.

Its own distribution, certmon-simulator (simulator/pyproject.toml), which adds `certmon demo`
(`democli`, entry point group `certmon.commands`). Dependency direction: simulator -> daemon ->
remediations -> collectors; nothing of certmon imports simulator. The lab's model (`labmodel`) is
a leaf; `lab` builds it with `labconfigs` and `labdata`.
"""
