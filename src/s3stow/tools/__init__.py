"""The operator tools that stand beside the upload engine: ``bucket`` (setup and
inspection), ``doctor`` (preflight checks), ``verify`` (local tree, ledger and bucket
compared) and ``watch`` (uploads files as they appear, through the engine).

They use the engine, the store and the ledger; nothing below them imports a tool,
and they never import ``cli``.
"""
