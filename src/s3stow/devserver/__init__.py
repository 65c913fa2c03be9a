"""Local S3 servers on loopback for trying s3stow, the demo and the tests: ``seaweedfs``
(SeaweedFS's ``weed mini``, a real server storing objects on disk; the default where
its wheel is installed, and where the engine is chosen), ``moto`` (the emulator,
elsewhere and for tests that need its hooks) and ``snapshot`` (moto's ``--data-dir``).

Subprocesses started and stopped by PID. Imports only the base modules.
"""
