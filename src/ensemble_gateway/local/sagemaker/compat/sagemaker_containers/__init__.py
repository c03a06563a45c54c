"""A stand-in for ``sagemaker_containers``: the serving parts model scripts import, on sagemaker-inference.

Provided: ``beta.framework`` with ``content_types``, ``encoders``, ``errors`` and ``worker``
(``Response``), and the private modules behind them (``_content_types``, ``_encoders``,
``_errors``, ``_worker``). Not provided: training, ``env``, ``modules``, ``server``,
``transformer`` (the local runtime itself plays the server and transformer).
"""
