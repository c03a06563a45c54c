"""The domain: prediction lifecycle, service catalog and mapping DSL. No boto3 here."""
