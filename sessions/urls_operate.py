"""Operator actions: deploys, runs, reruns, cancels (filled by the workers work)."""

urlpatterns: list = []
