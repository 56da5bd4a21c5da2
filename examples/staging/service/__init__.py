"""Example staging target for loopdash: a small WebSocket "AI agent" service.

It exists so that loopdash's deploy/test workers have something *real* to
deploy and test: a process that listens on a port, authenticates tokens,
streams agent events and, depending on the deployed revision, fails in the
same ways the seed logs describe (1011 internal errors, streaming timeouts,
token validation failures, missing handlers, cross-user leaks, a flaky test).
"""
