"""Writes: everything that changes state goes through a service here; views and tasks stay thin."""
