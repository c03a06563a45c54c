"""Adapters: one per AWS service, each taking an optional boto3 client created lazily."""
