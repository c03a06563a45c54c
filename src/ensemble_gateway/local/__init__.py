"""The local runtime: the whole gateway on one machine, no AWS account, no Docker."""
