"""The linux-mm review bot: watch inboxes, assemble series, review each once, answer by policy.

watcher -> store (SQLite) -> assembler -> runner (a `job` process per review) -> outbox / site.
"""
