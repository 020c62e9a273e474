"""Runtimes that execute a model or an artifact on a dict of named inputs."""
