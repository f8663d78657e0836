"""Durable background jobs: one table, one runner, any number of kinds."""

from chitram_core.jobs.runner import Handler, JobFailed, JobRunner, RetryLater

__all__ = ["Handler", "JobFailed", "JobRunner", "RetryLater"]
