"""The distributed engine: one source file -> one shard, made anywhere, then one index.

- ``format``: the shard folder on disk (``ShardWriter``, ``Shard``, ``ShardSet``), untrusted when read
- ``worker``: ``ShardWorker`` -- parse, chunk and embed one file into one shard (no Ray needed)
- ``ray``: ``qa build --engine ray`` -- shard workers as Ray actors
- ``assemble``: ``qa index from-shards`` -- an index from a shard set, through the local update

Nothing is imported here: a worker loads only what it runs.
"""
