"""Simulated peers (lab environment, Windows nodes, gateways) for the demo and the tests."""
